"""Softmax against linear transformer (paper P6; figure 5 = the paper's Figure 2; claims 4a,
4b).

Specs "linear" and "softmax" (label seed): both models train on the same task instances (same
seed keys -> same task stream) with the MSE loss and the same batch/step schedule
(``Setup.phases``); the linear model with the paper's method (ppd, lambda > 0).

How the softmax model is trained [recon; switchable]:
- ``SOFTMAX_OPT = "ppd"`` (default): the same preconditioned projected steps on (V, W) with
  lambda = 0 and no projection of the logits W (an affine shift of a logit column is ignored by
  the softmax anyway); the 1/mu preconditioning applies to the logit columns as to A. The
  logit gradient is the attention gradient times the softmax Jacobian diag(a) - a a^T, which
  is 1/T of it at the uniform start and shrinks further as the attention sharpens, so the
  logit learning rate is ``LR_W_SCALE`` times the linear model's lr_A (the value learning rate
  is unchanged).
- ``SOFTMAX_OPT = "adam"``: Adam on (V, W), lr ``ADAM_LR`` decayed like the ppd schedule.

Measured numbers and what was tried: docs/findings.md
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from matplotlib.ticker import NullFormatter

from scbjax.core.metrics import corr_A
from scbjax.core.model import SOFTMAX
from scbjax.core.task import TaskConfig
from scbjax.engine.spec import RunSpec, grid
from scbjax.sim.train import Phase, TrainConfig
from scbjax.studies import plots
from scbjax.studies.base import Claim, fmt

TITLE = "Softmax and linear transformers learn similar attention, values and loss"
FIGURES = {
    "fig5_softmax": "Attention and value matrices learned by the linear model (paper's method) "
                    "and by the softmax model beside the ground truth q and P for one seed, and "
                    "both excess-loss and attention-correlation curves against samples.",
}
ORDER = 4  # after vs_sgd

SOFTMAX_OPT = "ppd"  # "ppd" (lambda = 0, logits not projected) or "adam"
LR_W_SCALE = 256.0  # softmax logit lr = LR_W_SCALE * linear lr_A (ppd)
ADAM_LR = 0.05
ADAM_DECAY = (1.0, 0.4, 0.1)  # Adam lr factor per phase
LOSS_RATIO_MAX = 2.0  # claim 4a
CORR_MIN = 0.9  # claim 4b
SHOW_SEED = 0  # the seed drawn in the heatmaps


@dataclasses.dataclass(frozen=True)
class Setup:
    N: int
    T: int
    Q: int
    seeds: int
    phases: tuple[Phase, ...]
    log_every: int


def _ph(steps, batch, lr, lam):
    return Phase(steps=steps, batch=batch, lr_V=lr, lr_A=lr, lam=lam)


MODES = {
    "tiny": Setup(N=6, T=8, Q=2, seeds=2, phases=(_ph(400, 32, 0.05, 1e-3),), log_every=50),
    "quick": Setup(N=8, T=16, Q=2, seeds=16,
                   phases=(_ph(3000, 32, 0.05, 1e-3), _ph(2000, 256, 0.02, 1e-3),
                           _ph(2000, 256, 0.005, 1e-3)), log_every=100),
    "full": Setup(N=10, T=32, Q=2, seeds=64,
                  phases=(_ph(6000, 32, 0.05, 1e-3), _ph(4000, 256, 0.02, 1e-3),
                          _ph(4000, 512, 0.005, 1e-3)), log_every=100),
}


def _configs(su: Setup) -> tuple[TrainConfig, TrainConfig]:
    tc = TaskConfig(N=su.N, T=su.T, Q=su.Q)
    lin = TrainConfig(task=tc, phases=su.phases, log_every=su.log_every)
    if SOFTMAX_OPT == "ppd":
        ph = tuple(dataclasses.replace(p, lr_A=LR_W_SCALE * p.lr_A, lam=0.0) for p in su.phases)
        sm = TrainConfig(task=tc, phases=ph, model="softmax", projection_A="none",
                         log_every=su.log_every)
    elif SOFTMAX_OPT == "adam":
        ph = tuple(Phase(steps=p.steps, batch=p.batch, lr_V=ADAM_LR * f, lr_A=ADAM_LR * f)
                   for p, f in zip(su.phases, ADAM_DECAY + (ADAM_DECAY[-1],) * len(su.phases)))
        sm = TrainConfig(task=tc, phases=ph, model="softmax", optimizer="adam",
                         log_every=su.log_every)
    else:
        raise ValueError(f"SOFTMAX_OPT: unknown {SOFTMAX_OPT!r}")
    return lin, sm


def runs(su: Setup) -> dict[str, RunSpec]:
    """"linear" and "softmax" over the same seeds (label seed): each seed's task is drawn from
    its key's task stream, so both models train on the same instance."""
    lin_cfg, sm_cfg = _configs(su)
    seeds = range(su.seeds)
    return {"linear": RunSpec(lin_cfg, grid(seeds)), "softmax": RunSpec(sm_cfg, grid(seeds))}


# --- analysis (loaded runs only) ---------------------------------------------------------


def _softmax_attention(sm) -> np.ndarray:
    """softmax(W) of each run of the softmax model [R, T, N]."""
    return np.asarray(jax.vmap(SOFTMAX.attention)(sm["params/A"]))


def _corr(lin, sm) -> dict:
    """Per seed: corr_A of softmax vs linear attention, of linear vs q, of softmax vs q."""
    if not (np.array_equal(lin.label("seed"), sm.label("seed"))
            and np.allclose(lin["task/P"], sm["task/P"])):
        raise ValueError("the two models must share their seeds and task instances")
    A_lin, A_sm, q = lin["params/A"], _softmax_attention(sm), lin["task/q"]
    c = {"sm_lin": jax.vmap(corr_A)(A_sm, A_lin), "lin_q": jax.vmap(corr_A)(A_lin, q),
         "sm_q": jax.vmap(corr_A)(A_sm, q)}
    return {k: np.asarray(v) for k, v in c.items()}


def figures(rs, su: Setup) -> dict:
    lin, sm = rs["linear"], rs["softmax"]
    one_lin, one_sm = lin.select(seed=SHOW_SEED), sm.select(seed=SHOW_SEED)
    A_lin, A_sm, q = one_lin["params/A"][0], _softmax_attention(one_sm)[0], one_lin["task/q"][0]
    fig, ax = plots.new_figure(2, 4, height=3.8, gridspec_kw={"width_ratios": (1, 1, 1, 1.25)})
    amax = float(max(A_lin.max(), A_sm.max(), q.max()))
    for j, (M, t) in enumerate(((A_lin, "linear: attention $A$"),
                                (A_sm, r"softmax: $\mathrm{softmax}(W)$"),
                                (q, "ground truth $q$"))):
        plots.heatmap(ax[0, j], M, t, xlabel="query token $k$", ylabel="position $t$",
                      vmin=min(0.0, float(M.min())), vmax=amax)
    P, V_lin, V_sm = one_lin["task/P"][0], one_lin["params/V"][0], one_sm["params/V"][0]
    vmin = float(min(V_lin.min(), V_sm.min(), 0.0))
    vmax = float(max(V_lin.max(), V_sm.max(), P.max()))
    for j, (M, t) in enumerate(((V_lin, "linear: value $V$"), (V_sm, "softmax: value $V$"),
                                (P, "ground truth $P$"))):
        plots.heatmap(ax[1, j], M, t, xlabel="current token $j$", ylabel="next token $i$",
                      cmap="magma", vmin=vmin, vmax=vmax)
    opt = {"ppd": r"ppd, $\lambda=0$", "adam": "Adam"}[SOFTMAX_OPT]
    lam = float(np.max(lin["settings/lam"]))
    for name, r, col in ((f"{plots.NAMES['linear']} (ppd, $\\lambda={lam:.2g}$)", lin, "C0"),
                         (f"{plots.NAMES['softmax']} ({opt})", sm, "C3")):
        plots.band(ax[0, 3], r.samples_L, r.metric("excess_loss"), label=name, color=col,
                   log_y=True)
        plots.band(ax[1, 3], r.samples_L, r.metric("corr_A"), label=name, color=col)
    ax[0, 3].set_title("excess loss")
    ax[0, 3].set_ylabel("excess population loss")
    ax[1, 3].set_title("attention against $q$")
    ax[1, 3].set_ylabel(plots.SYMBOLS["corr_A"] + " (centred cosine)")
    for a in ax[:, 3]:
        a.set_xlabel("samples")
        a.xaxis.set_minor_formatter(NullFormatter())
    fig.legend(*ax[0, 3].get_legend_handles_labels(), loc="outside upper center", ncol=2)
    fig.suptitle(f"Softmax against linear transformer, $N={su.N}$, $T={su.T}$, $Q={su.Q}$: "
                 f"matrices of seed {SHOW_SEED}, curves over {len(lin)} seeds")
    plots.letter_panels(fig)
    return {"fig5_softmax": fig}


def claims(rs, su: Setup) -> list[Claim]:
    lin, sm = rs["linear"], rs["softmax"]
    e_lin = float(np.median(lin.final("excess_loss")))
    e_sm = float(np.median(sm.final("excess_loss")))
    lo, hi = min(e_lin, e_sm), max(e_lin, e_sm)
    ratio = hi / lo if lo > 0 else float("inf")
    S = len(lin)
    c = {k: float(np.median(v)) for k, v in _corr(lin, sm).items()}
    return [
        Claim("4a", "softmax and linear transformer reach similar loss",
              f"final excess loss (median over {S} seeds): linear {fmt(e_lin)}, softmax "
              f"{fmt(e_sm)}; max/min = {fmt(ratio)}",
              f"max/min of the two medians <= {LOSS_RATIO_MAX:g}", bool(ratio <= LOSS_RATIO_MAX)),
        Claim("4b", "softmax and linear transformer learn similar attention",
              f"corr_A medians over {S} seeds: softmax vs linear {fmt(c['sm_lin'])}, "
              f"linear vs q {fmt(c['lin_q'])}, softmax vs q {fmt(c['sm_q'])}",
              f"all three >= {CORR_MIN:g}", bool(min(c.values()) >= CORR_MIN)),
    ]
