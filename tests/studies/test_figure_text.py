"""The checks of tests/figure_checks.py on small figures (every study figure is checked on the
tiny reproduction in tests/app/test_reproduce.py), and the house style's names and stamp."""

import numpy as np

from figure_checks import problems, word_problems
from scbjax.studies import plots


def _figure(good: bool):
    with plots.style():
        fig, ax = plots.new_figure(1, 2, height=2.0)
        x = np.arange(1, 6, dtype=float)
        rho = r"$\rho$" if good else "rho"
        ax[0, 0].plot(x, x ** 2, label=f"finetuned, {rho} = 0.5")
        ax[0, 0].plot(x, np.ones_like(x) if not good else 1 + 0.1 * x, label="second")
        ax[0, 0].axhline(1.0, color="0.5")  # a reference: may be constant
        plots.reference(ax[0, 0].plot(x, 2 + 0 * x, ":")[0])  # so may this
        ax[0, 0].set_xlabel("samples")
        ax[0, 0].legend()
        ax[0, 1].plot(x, -x)
        ax[0, 1].set_xticks(x, [f"{plots.NAMES['ppd_l1']} {i}" if good else f"exact lam_n x{i}"
                                for i in range(5)], rotation=90)
        if not good:
            fig.text(1.02, 0.5, "outside on the right")  # not in the layout
        fig.suptitle(r"ppd, $\lambda=0$" if good else "ppd, lambda=0, eps=0.1")
        if good:
            plots.letter_panels(fig)
    return fig


def test_a_figure_in_the_house_style_has_no_problems():
    assert problems(_figure(good=True)) == []


def test_each_problem_of_a_figure_is_found():
    p = "\n".join(problems(_figure(good=False)))
    for want in ("'rho'", "'lambda'", "'eps'", "'lam'", "underscore (code) in 'exact lam_n x0'",
                 "axes 0 ('')", "axes 1 ('')", "constant line 'second' at 1",
                 "outside the canvas: 'outside on the right'"):
        assert want in p, (want, p)
    assert "'_child" not in p  # the references (axhline, plots.reference) are not flagged


def test_overlapping_titles_of_two_panels_are_found():
    with plots.style():
        fig, ax = plots.plt.subplots(1, 2, figsize=(3.0, 2.0))  # no layout
        for a in ax:
            a.plot([1, 2], [1, 2])
            a.set_title("a title much wider than its panel, into the next one")
        plots.letter_panels(fig)
    assert any(p.startswith("overlap:") for p in problems(fig))


def test_words_outside_mathtext_only():
    assert word_problems(r"finetuned, $\rho=0.5$; $\|V-P\|_F$ and $\varepsilon_\mathrm{rec}$") == []
    assert word_problems("samples to eps") and word_problems("corr_V") and \
        word_problems("Lambda by the rule") and word_problems(r"$\mu$ and mu")
    assert word_problems("momentum") == []


def test_the_names_a_reader_sees_are_words_and_mathtext():
    names = list(plots.NAMES.values()) + list(plots.SYMBOLS.values()) + [
        plots.sgd_name("constant", 0.01), plots.sgd_name("decay", 0.3), plots.ppd_name(0.0),
        plots.ppd_name(1e-3)]
    for s in names:
        assert word_problems(s) == [], s
    assert plots.ppd_name(0.0) == plots.NAMES["ppd"] != plots.ppd_name(1e-3)
    assert "0.01" in plots.sgd_name("constant", 0.01) and "decay" in plots.sgd_name("decay", 1)


def test_the_stamp_lies_inside_the_canvas_beside_a_figure_legend(tmp_path):
    with plots.style():
        fig, ax = plots.new_figure(1, 1, height=2.0)
        ax[0, 0].plot([1, 2], [1, 3], label="a line")
        fig.legend(*ax[0, 0].get_legend_handles_labels(), loc="outside upper center")
        plots.letter_panels(fig)
        fig.supxlabel("scbjax 0.0 | reproduce --tiny | abc | 2026-01-01", x=0.995, ha="right",
                      fontsize=5)  # what save_figure adds
        assert problems(fig) == []
        paths = plots.save_figure(fig, tmp_path, "f", stamp="the stamp")
    assert [p.name for p in paths] == ["f.png", "f.pdf"] and paths[0].stat().st_size > 0
