"""Layer 4, runs as data: specs (``RunSpec``, ``Run``), the one executor (grouped, vmapped,
sharded, checkpointed, resumed), the on-disk store and the resource checks."""
