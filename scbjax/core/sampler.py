"""Sampling SCB sequences by inverse-CDF draws: one uniform number per drawn token."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from scbjax.core.task import Task
from scbjax.core.threefry import fused_ok as _fused_ok
from scbjax.core.threefry import threefry2x32 as _threefry2x32

Array = jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Batch:
    """``tokens`` B x T (x_1..x_T), ``query`` B (k = x_{T+1}), ``target`` B (x_o)."""

    tokens: Array
    query: Array
    target: Array


# --- Threefry-2x32 as one fused computation (scbjax.core.threefry), bit for bit jax.random's --
_U32 = jnp.uint32

def fold_in(key: Array, t: Array) -> Array:
    """``jax.random.fold_in(key, t)`` (t a uint32-convertible scalar)."""
    if not _fused_ok(key):
        return jax.random.fold_in(key, t)
    n1, n2 = _threefry2x32(key[0], key[1], _U32(0), jnp.asarray(t).astype(_U32))
    return jnp.stack([n1, n2])


def uniform(key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
    """``jax.random.uniform(key, shape, dtype)`` in [0, 1), bit for bit."""
    n = math.prod(shape)
    if not (_fused_ok(key) and jnp.dtype(dtype) == jnp.float32 and n < 2**32):
        return jax.random.uniform(key, shape, dtype)
    b1, b2 = _threefry2x32(key[0], key[1], jnp.zeros(shape, _U32),
                           jax.lax.iota(_U32, n).reshape(shape))
    mant = ((b1 ^ b2) >> _U32(9)) | _U32(0x3F800000)  # 1.0 + 23 random mantissa bits
    u = jax.lax.bitcast_convert_type(mant, jnp.float32) - jnp.float32(1.0)
    return jnp.maximum(jnp.float32(0.0), u)


BITS = ("jax", "paired")  # how the sampler draws its uniforms: see ``uniform`` and ``paired``


def _raw(key: Array) -> Array:
    return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def to_unit(w: Array) -> Array:
    """A uint32 word as a float32 in [0, 1) from its 23 high bits (as ``uniform``)."""
    mant = (w >> _U32(9)) | _U32(0x3F800000)  # 1.0 + 23 random mantissa bits
    u = jax.lax.bitcast_convert_type(mant, jnp.float32) - jnp.float32(1.0)
    return jnp.maximum(jnp.float32(0.0), u)


def paired_blocks(key: Array, B: int, T: int) -> tuple[Array, Array, int]:
    """(first words, second words, H): the B x (H + 1) blocks of ``paired`` (row b: counters
    b (H + 1) + j), H = ceil((T + 1) / 2)."""
    H = (T + 2) // 2
    k = _raw(key)
    ctr_BxH1 = jax.lax.iota(_U32, B * (H + 1)).reshape(B, H + 1)
    b1, b2 = _threefry2x32(k[0], k[1], jnp.zeros_like(ctr_BxH1), ctr_BxH1)
    return b1, b2, H


def paired(key: Array, B: int, T: int) -> Array:
    """The B x (T + 3) uniforms of ``sample(..., bits="paired")``: both 32-bit words of each
    Threefry-2x32 block, half the blocks of ``uniform`` (other numbers than jax's). Row b uses
    the counters b (H + 1) + j, j <= H, H = ceil((T + 1) / 2): the first words of blocks j < H
    give positions j, the second words positions H + j (up to T; the x_1..x_{T+1} draws), and
    block H gives positions T + 1 and T + 2 (the position and target draws). A row's numbers
    depend only on b and T: the first b rows of B are the rows of b (padded batches draw what
    unpadded ones do)."""
    b1, b2, H = paired_blocks(key, B, T)
    x = jnp.concatenate([to_unit(b1[:, :H]), to_unit(b2[:, :H])], axis=1)[:, : T + 1]
    return jnp.concatenate([x, to_unit(b1[:, H:]), to_unit(b2[:, H:])], axis=1)


def _cdf(p: Array, axis: int = -1) -> Array:
    """Cumulative sums with the last entry pinned to 1, so a draw never falls off the end."""
    c = jnp.cumsum(p, axis=axis)
    last = jnp.take(c, jnp.array([-1]), axis=axis)
    return c / last


# Up to this many categories, a draw counts the cdf entries <= u ("compare all": branch-free and
# vectorisable); above it, a binary search (jnp.searchsorted "scan"). The count runs in blocks
# of at most 32 entries, each summed inside one fused loop: a longer reduction is split by XLA
# into a materialised reduce-window (docs/findings.md 3.1).
COMPARE_ALL_MAX = 128
_BLOCK = 32


def _draw(cdf_K: Array, u: Array) -> Array:
    """Index i with cdf[i-1] <= u < cdf[i] (inverse CDF), clipped into range. ``cdf_K`` (K,)
    is shared by all of ``u``; its last entry is 1 > u, so the count never exceeds K - 1."""
    K = cdf_K.shape[-1]
    if K > COMPARE_ALL_MAX:
        i = jnp.searchsorted(cdf_K, u, side="right", method="scan")
        return jnp.minimum(i, K - 1).astype(jnp.int32)
    c = cdf_K[:-1].reshape((1,) * u.ndim + (K - 1,))
    i = jnp.zeros(u.shape, jnp.int32)
    for j in range(0, K - 1, _BLOCK):
        i = i + jnp.sum(c[..., j:j + _BLOCK] <= u[..., None], axis=-1, dtype=jnp.int32)
    return i


def _draw_row(cdf_RxK: Array, r_B: Array, u_B: Array, search: bool | None = None) -> Array:
    """``_draw(cdf_RxK[r_b], u_b)`` for each b. ``search`` (default: on a CPU): by a binary
    search in row r_b, ceil(log2 K) steps of one load each (a loop, so that XLA computes u
    once, before it, not in each step), instead of gathering whole rows (K loads per draw);
    the same index, the rows being non-decreasing (the search counts the entries <= u)."""
    if search is None:
        search = jax.default_backend() == "cpu"
    if not search:
        return jax.vmap(_draw)(cdf_RxK[r_B], u_B)
    K = cdf_RxK.shape[-1]
    n = (K - 1).bit_length()  # steps 2^(n-1) .. 1: up to 2^n - 1 >= K - 1 entries

    def body(m, i):  # take c[j - 1] if j <= K - 1 and c[j - 1] <= u, over c = row[:K - 1]
        j = i + (jnp.int32(1) << (n - 1 - m))
        c = cdf_RxK[r_B, jnp.minimum(j, K - 1) - 1]
        return jnp.where((j <= K - 1) & (c <= u_B), j, i)

    return jax.lax.fori_loop(0, n, body, jnp.zeros(jnp.shape(u_B), jnp.int32))


_PACK_MAX = min(2**15, COMPARE_ALL_MAX)  # two draws share one int32 (``sample``)


def _draw_pair(cdf_K: Array, u1: Array, u2: Array) -> Array:
    """``_draw(cdf_K, u1) | _draw(cdf_K, u2) << 16`` (K <= ``COMPARE_ALL_MAX``) as one
    reduction over the cdf entries: its result is stored once (XLA does not recompute a
    reduction in each reader), and the threefry that makes u1, u2 is computed once per block
    inside it (hoisted out of the loop over the entries)."""
    c = cdf_K[:-1].reshape((1,) * u1.ndim + (-1,))
    one = (c <= u1[..., None]).astype(jnp.int32) + ((c <= u2[..., None]).astype(jnp.int32) << 16)
    return jnp.sum(one, axis=-1, dtype=jnp.int32)


def task_cdfs(task: Task) -> tuple[Array, Array, Array]:
    """(cdf of mu [N], cdfs of q(k) [N, T] by row, cdfs of P[:, j] [N, N] by row)."""
    return _cdf(task.mu), _cdf(task.q.T), _cdf(task.P.T)


def sample(key: Array, task: Task, B: int, cdfs: tuple | None = None,
           bits: str = "jax") -> Batch:
    """Draw B i.i.d. samples: x_1..x_{T+1} ~ mu, k = x_{T+1}, s ~ q(k), x_o ~ P[:, x_s].
    ``cdfs = task_cdfs(task)`` may be passed in (computed once for many steps). ``bits``
    (``BITS``): the B x (T + 3) uniforms by ``uniform`` ("jax": jax.random's numbers) or by
    ``paired`` (both words of each threefry block: other numbers, half the blocks)."""
    T = task.T
    if bits not in BITS:
        raise ValueError(f"bits: must be one of {BITS}, got {bits!r}")
    cmu_N, cq_NxT, cP_NxN = task_cdfs(task) if cdfs is None else cdfs
    N = cmu_N.shape[0]
    if bits == "jax":
        u = uniform(key, (B, T + 3), task.P.dtype)
        x_BxT1, u_s, u_o = _draw(cmu_N, u[:, : T + 1]), u[:, T + 1], u[:, T + 2]
    elif N <= _PACK_MAX:
        # The two draws of one block leave it packed in one int32 (one output per block):
        # two outputs would make XLA compute the block twice or store every round of it.
        # Then unpacked: the tokens of the words' positions (``paired``).
        b1, b2, H = paired_blocks(key, B, T)
        d = _draw_pair(cmu_N, to_unit(b1[:, :H]), to_unit(b2[:, :H]))
        x_BxT1 = jnp.concatenate([d & 0xFFFF, d >> 16], axis=1)[:, : T + 1]
        u_s, u_o = to_unit(b1[:, H]), to_unit(b2[:, H])
    else:
        u = paired(key, B, T)
        x_BxT1, u_s, u_o = _draw(cmu_N, u[:, : T + 1]), u[:, T + 1], u[:, T + 2]
    tokens_BxT, query_B = x_BxT1[:, :T], x_BxT1[:, T]
    s_B = _draw_row(cq_NxT, query_B, u_s)
    xs_B = jnp.take_along_axis(tokens_BxT, s_B[:, None], axis=1)[:, 0]
    target_B = _draw_row(cP_NxN, xs_B, u_o)
    return Batch(tokens=tokens_BxT, query=query_B, target=target_B)


def token_counts(batch: Batch, N: int, mask: Array | None = None) -> Array:
    """Counts of each token among all T + 1 input tokens of the batch (for the mu estimate);
    with ``mask`` (B, bool) only the samples where it is True count (padded batches)."""
    x = jnp.concatenate([batch.tokens.reshape(-1), batch.query.reshape(-1)])
    if mask is None:
        return jnp.zeros(N, jnp.float32).at[x].add(1.0)
    w_B = mask.astype(jnp.float32)
    T = batch.tokens.shape[-1]
    w = jnp.concatenate([jnp.repeat(w_B, T), w_B])
    return jnp.zeros(N, jnp.float32).at[x].add(w)
