"""``python -m benchmarks.harness``: see :mod:`benchmarks.harness.cli`."""

from .cli import main

main()
