"""Layer 5, what a user runs: the CLI, sweeps, the reproduction, plots and the benchmark."""
