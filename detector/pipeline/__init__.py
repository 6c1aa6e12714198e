"""The stages a drive flows through, in order.

:mod:`~detector.pipeline.sources` (video and its GPS track) → :mod:`~detector.pipeline.sampler` (frames by distance)
→ :mod:`~detector.pipeline.frame_step` (per frame: :mod:`~detector.pipeline.inference`, then
:mod:`~detector.pipeline.localize` onto the map, with :mod:`~detector.pipeline.static_mask`) →
:mod:`~detector.pipeline.dedup` (sightings into hazards) → :mod:`~detector.pipeline.analysis` (a finished drive, ready
for the store). The store, tickets, review app and hub sit downstream; the shared records (:mod:`detector.records`,
:mod:`detector.detections`, :mod:`detector.camera`, :mod:`detector.geo`) sit below every stage.
"""
