"""A stand-in for the city's 106 hotline: an Open311 GeoReport v2 server for demos, development and the tests.

Not part of the runtime path: the detector's ticket client (:mod:`detector.tickets`) talks to any GeoReport v2
server; ``detector serve-106`` starts this one.
"""
