"""What a paper's figure must satisfy, as a list of problems found in a drawn matplotlib figure
(empty: none). Used by tests/studies/test_figure_text.py (the checks themselves, on small
figures) and tests/app/test_reproduce.py (every study figure, from the tiny reproduction).

- words: no ASCII names of Greek letters (rho, lam, lambda, mu, eps, ...) and no underscores
  (code such as ``lam_n``, ``corr_V``) in any text a reader sees, outside $...$ mathtext;
- letters: every axes with data (colour bars aside) carries a bold panel letter "(a)", "(b)",
  ... in order of the figure's axes, each letter once;
- constants: no data line of a panel with two or more finite points is constant (not data
  lines: references drawn in axes coordinates (axhline / axvline) or marked by
  ``plots.reference``, fitted lines (gid "fit", a function of drawn points), markers without
  a line);
- canvas: after a draw, every text, legend and tick label lies inside the figure;
- overlap: titles, axis labels, panel letters and legends of different axes do not overlap.
"""

from __future__ import annotations

import re

import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text

GREEK_WORD = re.compile(r"(?<![A-Za-z])(rho|lam|lambda|mu|eps|epsilon|eta|sigma|alpha)"
                        r"(?![A-Za-z])", re.IGNORECASE)
MATH = re.compile(r"(?<!\\)\$.*?(?<!\\)\$")
LETTER = re.compile(r"^\(([a-z])\)$")
PAD = 0.5  # pixels of tolerance on the canvas and overlap tests


def plain(s: str) -> str:
    """The text outside $...$ mathtext."""
    return MATH.sub(" ", s)


def word_problems(s: str) -> list[str]:
    p = plain(s)
    out = [f"ASCII Greek name {m.group(0)!r} in {s!r}" for m in GREEK_WORD.finditer(p)]
    if "_" in p:
        out.append(f"underscore (code) in {s!r}")
    return out


def _ticklabels(ax) -> list[Text]:
    out = []
    for axis in (ax.xaxis, ax.yaxis):
        for t in axis._update_ticks():  # the ticks drawn (inside the view limits)
            out += [lab for lab in (t.label1, t.label2) if lab.get_visible()]
    return out


def _legend_texts(leg) -> list[Text]:
    return ([leg.get_title()] + list(leg.get_texts())) if leg is not None else []


def is_colorbar(ax) -> bool:
    return getattr(ax, "_colorbar", None) is not None


def panel_letter(ax) -> str | None:
    """The letter of the axes' bold "(x)" text, or None."""
    for t in ax.texts:
        m = LETTER.match(t.get_text())
        if m and t.get_fontweight() in ("bold", 700, "heavy", 800, 900):
            return m.group(1)
    return None


def texts(fig: Figure) -> list[tuple[str, Text]]:
    """(owner, text) of every visible, non-empty text of the figure: owner "figure" or "axes i"."""
    out = [("figure", t) for t in fig.texts]  # the suptitle among them
    for leg in fig.legends:
        out += [("figure", t) for t in _legend_texts(leg)]
    for i, ax in enumerate(fig.axes):
        own = [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label,
               *ax.texts, *_ticklabels(ax), *_legend_texts(ax.get_legend())]
        out += [(f"axes {i}", t) for t in own]
    return [(o, t) for o, t in out if t.get_visible() and t.get_text().strip()]


def problems(fig: Figure) -> list[str]:
    """Everything of the module docstring that the figure violates."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    out = []
    for _, t in texts(fig):
        out += word_problems(t.get_text())
    letters = []
    for i, ax in enumerate(fig.axes):
        if not ax.has_data() or is_colorbar(ax):
            continue
        c = panel_letter(ax)
        if c is None:
            out.append(f"axes {i} ({ax.get_title()!r}): no panel letter")
        letters.append(c)
        for ln in ax.lines:
            if (ln.get_transform() is not ax.transData  # axhline / axvline
                    or ln.get_gid() in ("reference", "fit")  # plots.reference, a fitted line
                    or ln.get_linestyle() in ("None", " ", "")):  # points, not a line
                continue
            y = np.asarray(ln.get_ydata(), float)
            y = y[np.isfinite(y)]
            if y.size >= 2 and np.ptp(y) <= 1e-6 * max(1.0, float(np.abs(y).max())):
                out.append(f"axes {i} ({ax.get_title()!r}): constant line "
                           f"{ln.get_label()!r} at {y[0]:g}")
    got = [c for c in letters if c is not None]
    if got != [chr(ord("a") + k) for k in range(len(got))]:
        out.append(f"panel letters not a, b, c, ... in order: {got}")
    W, H = fig.bbox.width, fig.bbox.height
    boxes = []
    for owner, t in texts(fig):
        b = t.get_window_extent(r)
        if b.x0 < -PAD or b.y0 < -PAD or b.x1 > W + PAD or b.y1 > H + PAD:
            out.append(f"outside the canvas: {t.get_text()!r}")
        if owner != "figure" and t in _ticklabels_of(fig, owner):
            continue
        boxes.append((owner, t.get_text(), b))
    legends = [("figure", leg) for leg in fig.legends] + [
        (f"axes {i}", ax.get_legend()) for i, ax in enumerate(fig.axes)]
    for owner, leg in legends:
        if leg is None or not leg.get_visible():
            continue
        b = leg.get_window_extent(r)
        if b.x0 < -PAD or b.y0 < -PAD or b.x1 > W + PAD or b.y1 > H + PAD:
            out.append(f"{owner}: legend outside the canvas")
        boxes = [x for x in boxes if not (x[0] == owner and _inside(x[2], b))]
        boxes.append((owner, "<legend>", b))
    for k, (o1, s1, b1) in enumerate(boxes):
        for o2, s2, b2 in boxes[k + 1:]:
            if o1 != o2 and _overlap(b1, b2):
                out.append(f"overlap: {s1!r} ({o1}) and {s2!r} ({o2})")
    return out


def _ticklabels_of(fig: Figure, owner: str) -> list[Text]:
    return _ticklabels(fig.axes[int(owner.split()[1])])


def _inside(a, b) -> bool:
    return a.x0 >= b.x0 - PAD and a.x1 <= b.x1 + PAD and a.y0 >= b.y0 - PAD and \
        a.y1 <= b.y1 + PAD


def _overlap(a, b) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > PAD) and (min(a.y1, b.y1) - max(a.y0, b.y0)
                                                            > PAD)
