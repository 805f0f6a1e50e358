"""Memory: a conservative estimate of what a vmapped run group needs, checked before compiling.

``check_fits(config, runs)`` refuses (ConfigError) a group whose estimate exceeds the memory
available on the device, e.g. ``--N 100000`` (V alone is 40 GB per run), instead of letting XLA
fail deep inside compilation or the machine swap. It also counts what the job costs the host
before anything runs (``host_bytes``: the Run objects, their settings, hash text and tables),
so that a job of millions of runs is refused from its count, before any of them is built.
"""

from __future__ import annotations

import math
import os

import jax

from scbjax.core.sampler import COMPARE_ALL_MAX
from scbjax.sim.train import METRICS, TrainConfig, log_schedule
from scbjax.util.errors import ConfigError

WORD = 4  # bytes of a float32 / int32
SAFETY = 3  # XLA temporaries, fusion copies and allocator slack
# Host bytes per run of a job, besides its logged metrics: its Run object, labels and settings,
# its share of the spec's hash text and of the result tables (measured: about 3.6 KB per run
# of a sweep's specs; doubled for the copies made while the job is checked and written).
HOST_BYTES_PER_RUN = 8192


def _draw_width(K: int) -> int:
    """Intermediate entries per inverse-CDF draw among K categories (see sampler._draw)."""
    return K if K <= COMPARE_ALL_MAX else max(1, math.ceil(math.log2(K)))


def sampler_words(N: int, T: int, B: int, compare: float = 1.0) -> int:
    """Words of ``sample(key, task, B)``: uniforms, draws and their gathered CDF rows;
    ``compare`` words per entry of the B x (T + 1) x N comparison of the token draws (measured
    on XLA:CPU: about 1 inside the training loop, 1/4 (bool) for the one-off dataset draw)."""
    return int(B * (T + 3)  # uniforms
               + B * (T + 1) * (1 + compare * _draw_width(N))  # tokens and query ~ mu
               + B * T + B * _draw_width(T)  # position s ~ q(k): gathered CDF rows
               + B * N + B * _draw_width(N))  # target ~ P[:, x_s]: gathered CDF rows


def elements_per_run(config: TrainConfig, max_dataset: int = 0) -> int:
    """4-byte words one run holds at its peak (before the safety factor)."""
    N, T = config.task.N, config.task.T
    B = max(p.batch for p in config.phases)
    params = N * N + T * N
    words = 4 * params  # params, gradient, update, new params
    if config.optimizer == "adam":
        words += 2 * params
    words += N  # mu estimate counts (ppd)
    words += N * N + N + T * N  # task P, mu, q
    words += 5 * N * N + 2 * T * N  # make_task: Dirichlet draw, stationary solve, q scatter
    words += N * N + N + T * N  # sampler CDFs
    words += 8 * N * N + 4 * T * N  # metrics, population loss, projection temporaries
    step = 0
    if not config.population:
        step += sampler_words(N, T, B)
        step += 2 * B * T  # A[:, query] gathered, and its gradient (scatter)
        step += 5 * B * N  # h, f, one-hot target, residual, gradient wrt h
        step += 2 * B * (T + 1) + B  # token counts, mask
    if max_dataset > 0:
        words += max_dataset * (T + 2) + B  # the fixed dataset, permuted indices
        step = max(step, sampler_words(N, T, max_dataset, compare=0.25))  # drawn once, at init
    steps, _ = log_schedule(config)
    words += len(steps) * len(METRICS)  # logged metrics
    return words + step


def estimate_bytes(config: TrainConfig, runs: int, max_dataset: int = 0) -> int:
    """Conservative device memory (bytes) of ``runs`` vmapped runs of ``config``."""
    return SAFETY * WORD * runs * elements_per_run(config, max_dataset)


def host_bytes(config: TrainConfig, runs: int) -> int:
    """Conservative host memory (bytes) of building and recording a job of ``runs`` runs."""
    steps, _ = log_schedule(config)
    return runs * (HOST_BYTES_PER_RUN + 2 * WORD * len(steps) * len(METRICS))


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_bytes(device=None) -> int | None:
    """Memory free for a run group on ``device`` (default: JAX's first device): an
    accelerator's ``bytes_limit`` less ``bytes_in_use``; on a CPU the host's MemAvailable.
    None when it cannot be told."""
    device = device if device is not None else jax.devices()[0]
    if device.platform != "cpu":
        try:
            stats = device.memory_stats() or {}
        except (NotImplementedError, RuntimeError, AttributeError):  # not on every backend
            stats = {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return _meminfo_available()


def host_available_bytes() -> int | None:
    """The host's available memory (MemAvailable); None when it cannot be told."""
    return _meminfo_available()


def _shares_host() -> bool:
    """Whether the runs train in the host's memory (JAX's first device is a CPU)."""
    return jax.devices()[0].platform == "cpu"


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.3g} TB"


def check_fits(config: TrainConfig, runs: int, max_dataset: int = 0, where: str = "task.N",
               available: int | None = None, *, job_runs: int | None = None,
               what: str = "") -> int:
    """Raise ConfigError(where, ...) with the estimate and the memory available when ``runs``
    vmapped runs of ``config`` would not fit, or when building a job of ``job_runs`` runs
    (default ``runs``) would not fit on the host (``host_bytes``); return the device estimate
    (bytes). ``available`` overrides ``available_bytes()`` (then the device's memory, apart from
    the host's); when neither is known the check passes. ``what`` describes the runs in the
    message (default "R run(s)"). Arithmetic only: nothing is built."""
    config = config.validate()
    est = estimate_bytes(config, runs, max_dataset)
    job = runs if job_runs is None else job_runs
    host = host_bytes(config, job)
    t = config.task
    B = max(p.batch for p in config.phases)
    head = ((what or f"{runs} run(s)") + f" at N={t.N}, T={t.T}, batch {B}"
            + (f", dataset {max_dataset}" if max_dataset else ""))
    fix = ": lower N, T, the batch, the dataset or the number of runs"
    if available is None and _shares_host():  # one memory for the runs and the host
        avail = available_bytes()
        if avail is not None and est + host > avail:
            raise ConfigError(where, f"{head} need about {format_bytes(est + host)} of memory "
                              f"(estimate: {format_bytes(est)} to train, {format_bytes(host)} "
                              f"to build and record {job} run(s)), more than the "
                              f"{format_bytes(avail)} available" + fix)
        return est
    avail = available_bytes() if available is None else available
    if avail is not None and est > avail:
        raise ConfigError(where, f"{head} need about {format_bytes(est)} of memory (estimate), "
                          f"more than the {format_bytes(avail)} available" + fix)
    havail = host_available_bytes()
    if havail is not None and host > havail:
        raise ConfigError(where, f"{head}: building and recording {job} run(s) needs about "
                          f"{format_bytes(host)} of host memory (estimate), more than the "
                          f"{format_bytes(havail)} available: fewer runs")
    return est
