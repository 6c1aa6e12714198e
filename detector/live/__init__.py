"""``detector live``: the pipeline on the patrol vehicle, from a camera and gpsd, in bounded threads."""

from detector.live.runner import LiveReport, run_live

__all__ = ["LiveReport", "run_live"]
