"""Layer 0: errors, typed option fields, atomic file I/O, the backend guard (no JAX numerics)."""
