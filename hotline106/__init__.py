"""A stand-in for the city's 106 hotline: an Open311 GeoReport v2 server for demos, development and the tests.

Not part of the runtime path: the detector's ticket client (:mod:`detector.tickets`) talks to any GeoReport v2
server; ``detector serve-106`` starts this one. One job a module:

- :mod:`~hotline106.server`: ``detector serve-106``, the app on a socket until stopped;
- :mod:`~hotline106.app`: the routes, their parameters and the API (its docstring);
- :mod:`~hotline106.services`: the services offered, their attributes and notices, a request as GeoReport shows it;
- :mod:`~hotline106.requests_db`: the server's own SQLite file of requests and its queries;
- :mod:`~hotline106.answers`: JSON/XML answers and GeoReport errors;
- :mod:`~hotline106.faults`: failures and delays injected on purpose;
- :mod:`~hotline106.protocol`: h11 with deadlines, refused requests answered as GeoReport errors.
"""
