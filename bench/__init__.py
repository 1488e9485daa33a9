"""The benchmarks (``python -m bench``, ``make bench``) and the chaos run (``python -m bench.chaos``, ``make chaos``).

Run from the repository root; every module here is run with ``python -m bench.<module>``. ``bench.world`` and
``bench.faults`` (a throwaway config + database, real worker processes, kills and a history audit) are shared
with the test suite.
"""
