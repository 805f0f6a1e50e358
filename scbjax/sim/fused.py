"""A log interval of training steps as one Pallas kernel (``TrainConfig.fused``).

``make_fused_interval(config, max_batch, masked)`` returns ``run(state, cdfs, start, length)
-> (state, loss_sum)``, the ``fori_loop`` of ``make_stepper``'s ``advance`` over steps
``start .. start + length - 1`` as one kernel: per step it draws the batch from the run's own
threefry bits (the integer arithmetic of ``threefry.threefry2x32``, so the uniforms are bit for
bit those of ``sampler.sample``), takes the closed-form gradient of the MSE loss of the linear
model as one-hot contractions (no gathers), and applies SGD or ppd (true or estimated mu,
preconditioner, soft-threshold prox or its preconditioned form or none, affine projection or
none, in either order), with the padded-batch mask and the divergence check of ``step``. V, A
and the mu counts stay in the kernel's local values between steps. ``jax.vmap`` over runs
(the executor's ``jit(vmap(advance))``) makes it one program per run.

The kernel is written for Pallas' Triton backend: every array is padded to power-of-two
sizes (positions to ``pow2(T + 3)``, the width of a step's uniforms), padded CDF entries are 2
(never <= a uniform in [0, 1)), padded parameter entries 0 and kept 0. Off GPU it runs in
Pallas' interpreter (tests). ``covered(config, ...)`` says why a configuration is not covered
(None if it is); ``resolve_fused`` turns the config's "auto" / "on" / "off" into a choice.
"""

from __future__ import annotations

import dataclasses
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from scbjax.core.sampler import Batch
from scbjax.core.threefry import fused_ok as _fused_ok
from scbjax.core.threefry import threefry2x32 as _threefry  # traces inside a kernel too
from scbjax.sim.config import TrainConfig
from scbjax.util.errors import require

Array = jax.Array
_U32 = jnp.uint32
GPU_BACKENDS = ("gpu", "cuda", "rocm")


def covered(config: TrainConfig, max_dataset: int = 0, grad: str = "closed") -> str | None:
    """Why the fused kernel does not cover this configuration, or None if it does."""
    why = [(config.model != "linear", f"model {config.model!r} (linear only)"),
           (config.loss != "mse", f"loss {config.loss!r} (mse only)"),
           (config.population, "population mode"),
           (max_dataset > 0, "a fixed dataset"),
           (grad == "autodiff", "grad='autodiff'"),
           (config.optimizer not in ("ppd", "sgd"), f"optimizer {config.optimizer!r}"),
           (any(p.freeze for p in config.phases), "a freeze phase"),
           (config.bits != "jax", f"bits {config.bits!r} (jax only)")]
    if config.optimizer == "ppd":
        why += [(config.prox not in ("soft", "precond", "none"), f"prox {config.prox!r}"),
                (config.projection_V not in ("affine", "none"),
                 f"projection_V {config.projection_V!r}"),
                (config.projection_A not in ("affine", "none"),
                 f"projection_A {config.projection_A!r}")]
    why.append((not _fused_ok(np.zeros(2, np.uint32)), "a PRNG setup other than raw threefry"))
    return next((w for bad, w in why if bad), None)


def resolve_fused(config: TrainConfig, max_dataset: int = 0, grad: str = "closed",
                  backend: str | None = None, devices: int | None = None) -> bool:
    """Whether ``make_stepper`` uses the kernel: "off" never; "on" always (ConfigError
    "fused" naming what is not covered); "auto" on a GPU backend with one device (the kernel
    has no sharding rule: over several devices XLA would gather the runs onto each) for a
    covered configuration."""
    why = covered(config, max_dataset, grad)
    if config.fused == "on":
        require(why is None, "fused", f"the fused step does not cover {why}")
        return True
    backend = jax.default_backend() if backend is None else backend
    devices = jax.device_count() if devices is None else devices
    return (config.fused == "auto" and why is None and backend in GPU_BACKENDS
            and devices == 1)


_CHECKED: dict[tuple[str, str], str | None] = {}
_CHECK_LOCK = threading.RLock()


def device_check(config: TrainConfig, build) -> str | None:
    """Why "auto" must not use the kernel on this device for ``config`` (None: it may): once
    per backend and kernel variant (N, T, largest batch, phases, optimizer, mu, prox,
    projections, order), two runs of one 2-step interval at the configuration's N, T
    and largest batch, through ``build(config)`` (``make_stepper``) with fused off and on; a
    compile error or a difference beyond float32 rounding is the reason."""
    c = config
    key = (repr((c.task.N, c.task.T, max(p.batch for p in c.phases), len(c.phases),
                 c.optimizer, c.mu, c.prox, c.projection_V, c.projection_A, c.order)),
           jax.default_backend())  # what selects the kernel's code and shapes, not the values
    with _CHECK_LOCK:  # concurrent groups (executor workers): one check, one line
        if key not in _CHECKED:
            _CHECKED[key] = _check(config, build)
            if _CHECKED[key] is not None:
                print(f"scbjax: the fused step failed its check on this device "
                      f"({_CHECKED[key]}); using the XLA step", file=sys.stderr)
        return _CHECKED[key]


def _check(config: TrainConfig, build) -> str | None:
    B = max(p.batch for p in config.phases)
    short = dataclasses.replace(config, log_every=2, phases=tuple(
        dataclasses.replace(p, steps=2) for p in config.phases))
    keys = np.array([[0, 1], [0, 2]], np.uint32)
    starts, lengths = np.zeros(1, np.int32), np.full(1, 2, np.int32)
    out = []
    try:
        for how in ("off", "on"):
            st = build(dataclasses.replace(short, fused=how))
            adv = jax.jit(jax.vmap(st.advance, in_axes=(0, None, None, None, None)),
                          static_argnums=(3, 4))
            s1, m = adv(jax.vmap(st.init)(keys), starts, lengths, B, False)
            out.append([np.asarray(x) for x in (s1.params.V, s1.params.A, *m.values())])
    except Exception as e:  # noqa: BLE001 - any failure of the kernel means: do not use it
        return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]}"
    for a, b in zip(*out):
        if not np.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True):
            return f"differs from the XLA step by {float(np.nanmax(np.abs(a - b))):.2g}"
    return None


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _iota(shape, dim):
    return jax.lax.broadcasted_iota(jnp.int32, shape, dim)


def _pick(v, i):
    """Entry i (a traced scalar) of the 1-D array v, as a one-hot sum."""
    return jnp.sum(jnp.where(_iota(v.shape, 0) == i, v, jnp.zeros_like(v)))


def _pad(x: Array, shape: tuple, value) -> Array:
    return jnp.pad(x, [(0, s - d) for s, d in zip(shape, x.shape)], constant_values=value)


def _soft(x, t):
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, 0.0)


def _draw(k1, k2, t, cmu_N, cq_NxL, cP_NxN, T: int, BP: int):
    """Step t's batch (``sampler.sample(fold_in(key, t), task, B)`` in the first B of BP rows):
    (uniforms BP x L, tokens BP x L (the first T + 1 are x_1..x_T, k), query, target). The
    cdfs padded with 2; a draw counts the entries <= u (one-hot sums for the row gathers)."""
    NP, L = cP_NxN.shape[0], cq_NxL.shape[1]
    iN, col_BxL = _iota((NP,), 0), _iota((BP, L), 1)
    ctr_BxL = (_iota((BP, L), 0) * (T + 3) + col_BxL).astype(_U32)  # positional counters
    n1, n2 = _threefry(k1, k2, _U32(0), t.astype(_U32))  # fold_in(key, t)
    b1, b2 = _threefry(n1, n2, jnp.zeros((BP, L), _U32), ctr_BxL)
    mant = ((b1 ^ b2) >> _U32(9)) | _U32(0x3F800000)
    u_BxL = jnp.maximum(0.0, jax.lax.bitcast_convert_type(mant, jnp.float32) - 1.0)
    x_BxL = jnp.sum((cmu_N[None, None, :] <= u_BxL[:, :, None]).astype(jnp.int32), 2)

    def col(M, j):
        return jnp.sum(jnp.where(col_BxL == j, M, jnp.zeros_like(M)), axis=1)

    k_B, us_B, uo_B = col(x_BxL, T), col(u_BxL, T + 1), col(u_BxL, T + 2)
    q_BxN = k_B[:, None] == iN[None, :]
    cq_BxL = jnp.sum(jnp.where(q_BxN[:, :, None], cq_NxL[None], 0.0), axis=1)
    s_B = jnp.sum((cq_BxL <= us_B[:, None]).astype(jnp.int32), axis=1)
    xs_B = jnp.sum(jnp.where(col_BxL == s_B[:, None], x_BxL, 0), axis=1)  # x_{s_b}
    xs_BxN = xs_B[:, None] == iN[None, :]
    cP_BxN = jnp.sum(jnp.where(xs_BxN[:, :, None], cP_NxN[None], 0.0), axis=1)
    y_B = jnp.sum((cP_BxN <= uo_B[:, None]).astype(jnp.int32), axis=1)
    return u_BxL, x_BxL, k_B, y_B


def make_kernel(config: TrainConfig, max_batch: int, masked: bool):
    """The kernel body and its padded sizes (NP, L, BP, PP)."""
    N, T, B = config.task.N, config.task.T, max_batch
    NP, L, BP = _pow2(N), _pow2(T + 3), _pow2(B)
    PP = _pow2(len(config.phases))
    starts = [int(s) for s in np.cumsum([p.steps for p in config.phases])[:-1]]
    ppd = config.optimizer == "ppd"
    estimate = ppd and config.mu == "estimate"

    def kernel(key_ref, se_ref, V_ref, A_ref, cnt_ref, div_ref, mu_ref, cmu_ref, cq_ref,
               cP_ref, hp_ref, bt_ref, Vo_ref, Ao_ref, cnto_ref, divo_ref, loss_ref):
        key, se = key_ref[...], se_ref[...]
        k1, k2 = _pick(key, 0), _pick(key, 1)
        start, length = _pick(se, 0), _pick(se, 1)
        mu_N, cmu_N, cq_NxL, cP_NxN = mu_ref[...], cmu_ref[...], cq_ref[...], cP_ref[...]
        hp_4xP, bt_P = [hp_ref[i] for i in range(4)], bt_ref[...]
        iN = _iota((NP,), 0)
        row_B = _iota((BP,), 0)
        tok_BxLxN = _iota((BP, L, NP), 2)
        okV = (_iota((NP, NP), 0) < N) & (_iota((NP, NP), 1) < N)
        okA = (_iota((L, NP), 0) < T) & (_iota((L, NP), 1) < N)
        f32 = jnp.float32

        def project(M, ok, n, kind):
            if kind == "none":
                return M
            return jnp.where(ok, M - (jnp.sum(M, axis=0, keepdims=True) - 1.0) / n, 0.0)

        def body(t, carry):
            V, A, cnt, div, loss_sum = carry
            p = sum((t >= s).astype(jnp.int32) for s in starts) if starts else 0
            hp = [_pick(hp_4xP[i], p) for i in range(3)]
            lr_V, lr_A, lam = hp
            _, x_BxL, k_B, y_B = _draw(k1, k2, t, cmu_N, cq_NxL, cP_NxN, T, BP)
            q_BxN = k_B[:, None] == iN[None, :]
            # weights of the (masked) batch mean, token counts
            live_B = row_B < B
            if masked:
                live_B = live_B & (row_B < _pick(bt_P, p))
                m_B = live_B.astype(f32)
                w_B = m_B / jnp.maximum(jnp.sum(m_B), 1.0)
            else:
                w_B = jnp.where(live_B, f32(1.0 / B), 0.0)
            oh_BxLxN = (x_BxL[:, :, None] == tok_BxLxN) & live_B[:, None, None]
            tok = oh_BxLxN & (_iota((BP, L, NP), 1) < T)
            counts_N = jnp.sum(jnp.sum(jnp.where(oh_BxLxN & (_iota((BP, L, NP), 1) <= T),
                                                 1.0, 0.0), axis=0), axis=0)
            # the closed-form loss and gradient (losses.linear_loss_and_grad, dense)
            a_BxL = jnp.sum(jnp.where(q_BxN[:, None, :], A[None], 0.0), axis=2)
            h_BxN = jnp.sum(jnp.where(tok, a_BxL[:, :, None], 0.0), axis=1)
            f_BxN = jnp.sum(h_BxN[:, None, :] * V[None], axis=2)
            r_BxN = f_BxN - jnp.where(y_B[:, None] == iN[None, :], 1.0, 0.0)
            r_BxN = jnp.where(live_B[:, None], r_BxN, 0.0)
            loss = jnp.sum(w_B * (0.5 * jnp.sum(r_BxN * r_BxN, axis=1)))
            rw_BxN = r_BxN * w_B[:, None]
            G_V = jnp.sum(rw_BxN[:, :, None] * h_BxN[:, None, :], axis=0)
            g_BxN = jnp.sum(rw_BxN[:, :, None] * V[None], axis=1)
            gx_BxL = jnp.sum(jnp.where(tok, g_BxN[:, None, :], 0.0), axis=2)
            G_A = jnp.sum(jnp.where(q_BxN[:, None, :], gx_BxL[:, :, None], 0.0), axis=0)
            # the optimizer (optim.transforms: sgd, or ppd's step)
            if ppd:
                if estimate:
                    cnt = cnt + counts_N
                    m_N = cnt / jnp.sum(cnt)
                else:
                    m_N = mu_N
                inv_N = 1.0 / jnp.where(iN < N, m_N, 1.0)
                V = project(V - lr_V * (G_V * inv_N[None, :]), okV, N, config.projection_V)
                A = A - lr_A * (G_A * inv_N[None, :])
                thr = lr_A * lam
                if config.prox == "precond":
                    thr = thr / jnp.where(iN < N, m_N, 1.0)[None, :]
                if config.prox == "none":
                    A = project(A, okA, T, config.projection_A)
                elif config.order == "project_prox":
                    A = _soft(project(A, okA, T, config.projection_A), thr)
                else:
                    A = project(_soft(A, thr), okA, T, config.projection_A)
            else:
                V, A = V + -lr_V * G_V, A + -lr_A * G_A
            s = jnp.sum(V) + jnp.sum(A)
            div = jnp.where((div < 0) & ~((s - s) == 0.0), t + 1, div)
            return V, A, cnt, div, loss_sum + loss

        carry = (V_ref[...], A_ref[...], cnt_ref[...], _pick(div_ref[...], 0), f32(0.0))
        V, A, cnt, div, loss_sum = jax.lax.fori_loop(start, start + length, body, carry)
        Vo_ref[...], Ao_ref[...], cnto_ref[...] = V, A, cnt
        divo_ref[...] = jnp.full((1,), div, jnp.int32)
        loss_ref[...] = jnp.full((1,), loss_sum, f32)

    return kernel, (NP, L, BP, PP)


def make_fused_interval(config: TrainConfig, max_batch: int, masked: bool,
                        interpret: bool | None = None):
    """``run(state, cdfs, start, length) -> (state, loss_sum)``: steps ``start`` ..
    ``start + length - 1`` of one run (a ``TrainState`` of ``make_stepper``; ``cdfs`` its
    ``task_cdfs``). ``interpret`` (default: off a GPU backend) runs Pallas' interpreter."""
    N, T = config.task.N, config.task.T
    kernel, (NP, L, BP, PP) = make_kernel(config, max_batch, masked)
    if interpret is None:
        interpret = jax.default_backend() not in GPU_BACKENDS
    f32, i32 = jnp.float32, jnp.int32
    out_shape = (jax.ShapeDtypeStruct((NP, NP), f32), jax.ShapeDtypeStruct((L, NP), f32),
                 jax.ShapeDtypeStruct((NP,), f32), jax.ShapeDtypeStruct((1,), i32),
                 jax.ShapeDtypeStruct((1,), f32))
    call = pl.pallas_call(kernel, out_shape=out_shape, interpret=interpret, name="scb_interval",
                          compiler_params=pltriton.CompilerParams(num_warps=4, num_stages=1))

    def run(state, cdfs, start: Array, length: Array):
        cmu_N, cq_NxT, cP_NxN = cdfs
        leaves, tree = jax.tree.flatten(state.opt_state)  # ppd: the MuState counts; sgd: none
        cnt = leaves[0] if leaves else jnp.zeros((N,), f32)
        st = state.settings
        hp = jnp.stack([_pad(st.phase[n].astype(f32), (PP,), 0.0)
                        for n in ("lr_V", "lr_A", "lam", "lr_V")])
        args = (jnp.asarray(state.k_data, _U32),
                jnp.stack([jnp.asarray(start, i32), jnp.asarray(length, i32)]),
                _pad(state.params.V, (NP, NP), 0.0), _pad(state.params.A, (L, NP), 0.0),
                _pad(cnt, (NP,), 0.0), jnp.reshape(state.diverged_step, (1,)).astype(i32),
                _pad(state.task.mu, (NP,), 1.0), _pad(cmu_N, (NP,), 2.0),
                _pad(cq_NxT, (NP, L), 2.0), _pad(cP_NxN, (NP, NP), 2.0), hp,
                _pad(st.phase["batch"].astype(i32), (PP,), 0))
        V, A, cnt, div, loss = call(*args)
        params = type(state.params)(V=V[:N, :N], A=A[:T, :N])
        opt_state = jax.tree.unflatten(tree, [cnt[:N]] * len(leaves)) if leaves else \
            state.opt_state
        new = state.__class__(params=params, opt_state=opt_state, diverged_step=div[0],
                              task=state.task, k_data=state.k_data, settings=state.settings,
                              data=state.data)
        return new, loss[0]

    return run


def draw(key: Array, t: Array, cdfs, T: int, B: int, interpret: bool = True):
    """The kernel's batch of step t alone (for tests): (uniforms B x (T + 3), ``Batch``), to
    compare with ``sampler.uniform(fold_in(key, t), (B, T + 3))`` and ``sampler.sample``."""
    cmu_N, cq_NxT, cP_NxN = cdfs
    N = cmu_N.shape[0]
    NP, L, BP = _pow2(N), _pow2(T + 3), _pow2(B)

    def kernel(key_ref, t_ref, cmu_ref, cq_ref, cP_ref, u_ref, x_ref, k_ref, y_ref):
        key = key_ref[...]
        u, x, k, y = _draw(_pick(key, 0), _pick(key, 1), _pick(t_ref[...], 0), cmu_ref[...],
                           cq_ref[...], cP_ref[...], T, BP)
        u_ref[...], x_ref[...], k_ref[...], y_ref[...] = u, x, k, y

    i32 = jnp.int32
    shapes = (jax.ShapeDtypeStruct((BP, L), jnp.float32), jax.ShapeDtypeStruct((BP, L), i32),
              jax.ShapeDtypeStruct((BP,), i32), jax.ShapeDtypeStruct((BP,), i32))
    u, x, k, y = pl.pallas_call(kernel, out_shape=shapes, interpret=interpret)(
        jnp.asarray(key, _U32), jnp.reshape(jnp.asarray(t, i32), (1,)), _pad(cmu_N, (NP,), 2.0),
        _pad(cq_NxT, (NP, L), 2.0), _pad(cP_NxN, (NP, NP), 2.0))
    return u[:B, :T + 3], Batch(tokens=x[:B, :T], query=k[:B], target=y[:B])
