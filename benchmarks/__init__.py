"""Cold-start benchmarks of aiomodelkit against its peers (see benchmarks/README.md)."""
