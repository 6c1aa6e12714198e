"""106 tickets: confirmed hazards become municipal hotline requests, exactly once.

outbox rows (queued by the store) → the sender in :mod:`~detector.tickets.outbox` → a
:class:`~detector.tickets.adapter.TicketAdapter` (Open311 GeoReport v2 in
:mod:`~detector.tickets.open311`), with a description (:mod:`~detector.tickets.describe`) and a
redacted evidence photo (:mod:`~detector.privacy.evidence`). :mod:`hotline106` is a
local GeoReport v2 server for demos and tests; :mod:`~detector.tickets.commands` adds the
``tickets sync`` and ``serve-106`` commands. Nothing is imported here, so the CLI stays fast.
"""
