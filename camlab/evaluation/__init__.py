"""How good a map is, and how sure we are: everything the evidence chapters measure with.

- :mod:`~camlab.evaluation.metrics`: the faithfulness metrics (drop, increase, deletion and
  insertion, ROAD, equal area, pointing, coverage); :mod:`~camlab.evaluation.imputation` ROAD's
  noisy linear imputation;
- :mod:`~camlab.evaluation.sanity`: Adebayo et al.'s sanity checks;
  :mod:`~camlab.evaluation.agreement`: whether the metrics rank the methods alike;
- :mod:`~camlab.evaluation.stats`: intervals and paired tests for every number reported;
  :mod:`~camlab.evaluation.timing`: timings with intervals;
- the harness: :mod:`~camlab.evaluation.harness` (methods × images × metrics → rows, summaries),
  :mod:`~camlab.evaluation.results` (its CSV files, resuming, the lock) and
  :mod:`~camlab.evaluation.cli` (its command line, ``python -m camlab.evaluation``).
"""
