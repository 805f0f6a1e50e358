"""Two bounds on the bench's step rate, measured in the run that times the step.

- The random-number bound: sample-steps per second of a jitted ``vmap`` over seeds that only
  draws the step's uniforms (B x (T + 3) per step from ``fold_in(key, step)``) by the fastest
  draw the project has: the fused threefry of ``sampler.uniform`` (one block per number,
  jax.random's numbers) or the blocks of ``sampler.paired`` (both words of each block, used
  together), whichever is faster.
- The memory bound: a step reads and writes V (N x N) and A (T x N) once, float32:
  ``bytes_per_seed_step = 2 * 4 * (N^2 + T N)`` (10,240 at N = 16, T = 64); everything else
  a step touches (the task's CDFs, the batch: B (T + 3) words) is read-only or smaller. Over
  the device's copy bandwidth (a jitted in-place ``x + 1`` on a ``copy_mb`` MB float32 array:
  it reads and writes the array once, 2 x its bytes, best of ``repeats``) that is
  ``B * bandwidth / bytes_per_seed_step`` sample-steps per second (B samples per seed-step).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from scbjax.core import sampler

DRAWS = ("jax.random", "fused", "paired")


def bytes_per_seed_step(N: int, T: int) -> int:
    """Bytes of V and A read and written once by one step of one seed (float32)."""
    return 2 * 4 * (N * N + T * N)


def copy_bandwidth(mb: int = 256, repeats: int = 3) -> float:
    """Bytes per second of a jitted, in-place ``x + 1`` on an ``mb`` MB float32 array (read +
    write; the input donated, as the step's state is updated in place: a fresh output buffer
    on a CPU would time the page faults of first touch, 8 to 20x slower here). Best of
    ``repeats``."""
    n = mb * 2**20 // 4
    f = jax.jit(lambda a: a + 1.0, donate_argnums=0)
    x = jax.block_until_ready(f(jnp.zeros((n,), jnp.float32)))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        x = jax.block_until_ready(f(x))
        best = min(best, time.perf_counter() - t0)
    del x
    return 2 * n * 4 / best


def _paired_words(key, B: int, T: int):
    """Every number of ``sampler.paired``'s blocks, as the sampler uses them: both words of a
    block in one element (their sum), so that each block is computed once."""
    b1, b2, _ = sampler.paired_blocks(key, B, T)
    return sampler.to_unit(b1) + sampler.to_unit(b2)


def rng_call(keys, steps: int, B: int, T: int, how: str = "jax.random"):
    """Compiled, warmed-up call that only draws the sampler's B x (T + 3) uniforms for all
    seeds and steps: by ``jax.random`` (the floor's draw), by the step's fused threefry
    (``sampler.uniform``, the same numbers) or by ``sampler.paired`` (``how``, ``DRAWS``)."""
    if how not in DRAWS:
        raise ValueError(f"how: must be one of {DRAWS}, got {how!r}")
    fold = jax.random.fold_in if how == "jax.random" else sampler.fold_in
    unif = {"jax.random": lambda k: jax.random.uniform(k, (B, T + 3)),
            "fused": lambda k: sampler.uniform(k, (B, T + 3)),
            "paired": lambda k: _paired_words(k, B, T)}[how]

    def one(key):
        def body(acc, t):
            return acc + unif(fold(key, t)).sum(), None  # every draw is used

        return jax.lax.scan(body, jnp.zeros((), jnp.float32),
                            jnp.arange(steps, dtype=jnp.int32))[0]

    f = jax.jit(jax.vmap(one))
    jax.block_until_ready(f(keys))
    return lambda: f(keys)


def bounds(work: int, t_draw: dict, N: int, T: int, B: int, bandwidth: float) -> dict:
    """The two bounds (sample-steps/s) for ``work`` sample-steps, from the best draw times
    ``t_draw`` of the fused and paired draws and the copy bandwidth (bytes/s)."""
    how = min(("fused", "paired"), key=lambda k: t_draw[k])
    return {"rng_bound_samples_per_s": work / t_draw[how], "rng_bound_draw": how,
            "mem_bound_samples_per_s": B * bandwidth / bytes_per_seed_step(N, T)}
