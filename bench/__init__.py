"""Benchmarks: training throughput (`train_throughput.py`) and serving against the machine's
limit and the servers a user would pick instead (`serve_compare.py`); results in
docs/benchmarks.md."""
