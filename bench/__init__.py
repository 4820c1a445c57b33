"""Benchmarks of training and serving, and the training ablations: one entry point,
`python -m bench COMMAND` (bench/__main__.py lists the commands); results and the commands
that make them in docs/benchmarks.md."""
