"""Performance benchmarks: what the framework, the monitors and the speed options cost per step and in memory."""
