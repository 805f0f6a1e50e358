"""The variance study's criteria and reports as pure functions of its table (``variance.table``:
one row per setting, budget and arm) and its fits (``variance.exponents``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scbjax.studies.base import interval_below

if TYPE_CHECKING:
    from scbjax.studies.variance import Setup

ARMS = ("ppd", "ppd_l1", "sgd_const", "sgd_decay")
UNREG = ("ppd", "sgd_const", "sgd_decay")
EPS = (0.5, 0.3)  # samples until rel dist_A <= eps
V_SLACK = 1.05  # decide_default: the l1 arm's rel dist_V at most this x ppd's


def row(rows, **kw) -> dict:
    """The first row whose entries equal ``kw`` (a KeyError if none)."""
    for r in rows:
        if all(r[k] == v for k, v in kw.items()):
            return r
    raise KeyError(kw)


def check_variance(fits: dict, rows, su: Setup) -> bool:
    """Claim 6a (``scbjax.studies.variance``'s docstring) from the fits and the table."""
    small, large = su.samples
    T = max(su.Ts)
    ok = True
    for arm in UNREG:
        f = fits[(arm, large, "rel_dist_A")]
        at = {n: row(rows, N=su.N, Q=su.Q, T=T, B=su.batch, samples=n, arm=arm)["rel_dist_A"]
              for n in su.samples}
        ok &= bool(np.isfinite(f.lo) and f.lo > 0) and at[large] >= at[small]
        ok &= interval_below(fits[("ppd_l1", large, "rel_dist_A")], f)
    return bool(ok)


def check_small_batch(rows, su: Setup) -> bool:
    """Claim 6b (``scbjax.studies.variance``'s docstring) from the table."""
    small, large = su.samples
    ok = True
    for T in (T for T in su.Ts if T >= su.T_large):
        cell = {a: row(rows, N=su.N, Q=su.Q, T=T, B=su.batch, samples=large, arm=a)
                for a in ARMS}
        for m in ("rel_dist_A", "rel_dist_V"):
            ok &= all(cell["ppd_l1"][m] < cell[a][m] for a in UNREG)
        s = row(rows, N=su.N, Q=su.Q, T=T, B=su.batch, samples=small, arm="ppd_l1")
        ok &= cell["ppd_l1"]["rel_dist_A"] < s["rel_dist_A"]
    return bool(ok)


def decide_default(rows, su: Setup) -> str:
    """"rule" iff at batch 8, the largest T and the larger budget, ppd_l1's median rel dist_A
    is below ppd's and its rel dist_V at most ``V_SLACK`` x ppd's; else "none"."""
    cell = {a: row(rows, N=su.N, Q=su.Q, T=max(su.Ts), B=su.batch, samples=su.samples[-1],
                    arm=a) for a in ("ppd", "ppd_l1")}
    ok = (cell["ppd_l1"]["rel_dist_A"] < cell["ppd"]["rel_dist_A"]
          and cell["ppd_l1"]["rel_dist_V"] <= V_SLACK * cell["ppd"]["rel_dist_V"])
    return "rule" if ok else "none"


def check_extra(rows, su: Setup) -> bool:
    """Claim 6d (``scbjax.studies.variance``'s docstring) from the table."""
    N, Q, T = su.extra
    small, large = su.samples
    c = {(a, n): row(rows, N=N, Q=Q, T=T, B=su.batch, samples=n, arm=a)["rel_dist_A"]
         for a in ("ppd", "ppd_l1") for n in su.samples}
    return bool(c[("ppd", large)] >= c[("ppd", small)]
                and all(c[("ppd_l1", n)] < c[("ppd", n)] for n in su.samples))


def format_table(rows) -> str:
    """The table (``variance.table``) as markdown; an SGD arm with its best rates."""
    cols = ["N", "Q", "T", "B", "samples", "arm", "rel_dist_A", "rel_dist_V",
            "off_support_mass"] + [f"to_{e:g}" for e in EPS] + [f"censored_{e:g}" for e in EPS]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            if c == "arm" and r["arm"].startswith("sgd"):
                v = f"{v} (lr {r['lr_rel_dist_A']:g}/{r['lr_rel_dist_V']:g})"
            cells.append(f"{v:.3g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_exponents(fits: dict) -> str:
    """The fits (``variance.exponents``) as markdown."""
    lines = ["| arm | samples | metric | T-exponent [95%] |", "|---|---|---|---|"]
    for (arm, n, m), f in fits.items():
        lines.append(f"| {arm} | {n} | {m} | {f.text()} |")
    return "\n".join(lines)
