"""Performance benchmarks and the load script (run with ``python -m benchmarks.<name>``)."""
