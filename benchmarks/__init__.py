"""The benchmark of userdebtor-pipeline (`userdebtor bench`, or `python benchmarks/run.py`): it lives in the
checkout, beside the package, and is not part of the installed wheel."""
