"""Statistics shared by gates and benchmarks (framework-free)."""
