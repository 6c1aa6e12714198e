"""``detector batch``: reprocess many recorded drives into one store, on local processes or a Dask cluster.

* :mod:`detector.batch.jobs` finds the drives (folders, globs, an index CSV);
* :mod:`detector.batch.worker` analyses one drive wherever it runs, returning errors as values;
* :mod:`detector.batch.runner` skips what the store already has, farms out the rest and merges
  the results in the parent, in input order.
"""
