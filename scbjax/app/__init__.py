"""Layer 6, what a user runs: the CLI, sweeps, the reproduction and the benchmark."""
