"""The shared harness of the benchmarks: worker processes, rounds, RSS, clocks, ratio statistics, model builders."""
