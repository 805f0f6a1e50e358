"""``scbjax plot`` of train and sweep outputs (and folders of spec folders): the files, the
plotted medians against the arrays, --final, one-line errors naming the option."""

import shutil
import subprocess

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from scbjax.app.cli import build_parser, main
from scbjax.app.plot_runs import curves, draw, load_table
from scbjax.engine.store import load_runs

SPEC = """name = "tiny"
seeds = 2
[base]
log_every = 2
[base.task]
N = 4
T = 5
Q = 2
[[base.phases]]
steps = 8
batch = 4
[axes]
lam = [0.0, 1e-3]
batch = [2, 4]
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("plot_runs")
    (d / "spec.toml").write_text(SPEC)
    assert main(["sweep", str(d / "spec.toml"), "--out", str(d / "sw"), "--quiet"]) == 0
    return d / "sw"


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    d = tmp_path_factory.mktemp("plot_train") / "tr"
    assert main(["train", "--N", "4", "--T", "5", "--Q", "2", "--steps", "8", "--batch", "4",
                 "--log-every", "2", "--seeds", "3", "--out", str(d), "--quiet"]) == 0
    return d


def options(*argv):
    return build_parser().parse_args(["plot", "DIR", *argv])


def group(sweep):
    (g,) = (sweep / "groups").iterdir()
    return load_runs(g)


def test_sweep_curves_write_png_and_pdf_with_the_stamp(sweep, tmp_path, capsys):
    figs = tmp_path / "figs"
    assert main(["plot", str(sweep), "--y", "dist_A", "--hue", "lam", "--col", "batch",
                 "--figures", str(figs)]) == 0
    png, pdf = figs / "dist_A_vs_samples_by_lam_col_batch.png", figs.joinpath(
        "dist_A_vs_samples_by_lam_col_batch.pdf")
    assert capsys.readouterr().out.split() == [str(png), str(pdf)]
    assert png.stat().st_size > 0 and pdf.read_bytes()[:5] == b"%PDF-"
    img = plt.imread(png)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 200
    assert "| plot sweep sw |" in Image.open(png).info["Description"]


def test_the_default_figures_folder_is_out_figures(sweep, capsys):
    assert main(["plot", str(sweep), "--hue", "batch", "--where", "lam=0"]) == 0
    png = sweep / "figures" / "excess_loss_vs_samples_by_batch_where_lam=0.png"
    assert png.stat().st_size > 0 and capsys.readouterr().out.split()[0] == str(png)


def test_the_curves_drawn_are_the_medians_of_the_arrays(sweep):
    a = options("--y", "dist_A", "--hue", "lam", "--col", "batch")
    t = load_table(sweep)
    data = curves(t, a)
    assert sorted(data) == [(b, lam) for b in ("2", "4") for lam in ("0", "0.001")]
    fig = draw(t, a, data)
    runs = group(sweep)
    for (b, lam), (x, med, lo, hi, _) in data.items():
        r = runs.select(batch=b, lam=lam)
        Y = r.metric("dist_A")
        assert len(r) == 2  # the two seeds
        np.testing.assert_array_equal(x, r.samples[0])
        np.testing.assert_allclose(med, np.median(Y, axis=0), rtol=1e-6)
        np.testing.assert_allclose(lo, np.quantile(Y, 0.25, axis=0), rtol=1e-6)
        np.testing.assert_allclose(hi, np.quantile(Y, 0.75, axis=0), rtol=1e-6)
        ax = fig.axes[["2", "4"].index(b)]
        assert ax.get_title() == f"batch = {b}"
        (line,) = [ln for ln in ax.get_lines() if ln.get_label() == lam]
        np.testing.assert_allclose(line.get_ydata(), np.median(Y, axis=0), rtol=1e-6)
        np.testing.assert_array_equal(line.get_xdata(), r.samples[0])
    assert "25-75%" in fig.axes[-1].get_legend().get_title().get_text()
    legend = fig.axes[-1].get_legend()
    assert [x.get_text() for x in legend.get_texts()] == ["0", "0.001"]
    colours = {ln.get_label(): ln.get_color() for ax in fig.axes for ln in ax.get_lines()}
    assert all(ln.get_color() == colours[ln.get_label()]
               for ax in fig.axes for ln in ax.get_lines())  # one colour per lam in each panel
    assert colours["0"] != colours["0.001"]
    plt.close(fig)


def test_final_against_batch(sweep, tmp_path):
    assert main(["plot", str(sweep), "--final", "--x", "batch", "--hue", "lam", "--logy",
                 "--figures", str(tmp_path)]) == 0
    assert (tmp_path / "excess_loss_final_vs_batch_by_lam.pdf").stat().st_size > 0
    a = options("--final", "--x", "batch", "--hue", "lam")
    runs = group(sweep)
    data = curves(load_table(sweep), a)
    assert sorted(data) == [(None, "0"), (None, "0.001")]
    for (_, lam), (x, med, lo, hi, _) in data.items():
        np.testing.assert_array_equal(x, [2.0, 4.0])
        want = [np.median(runs.select(lam=lam, batch=b).final("excess_loss")) for b in "24"]
        np.testing.assert_allclose(med, want, rtol=1e-6)
        assert np.all(lo <= med) and np.all(med <= hi)


def test_a_train_output(train, tmp_path):
    assert main(["plot", str(train), "--logx", "--figures", str(tmp_path)]) == 0
    assert (tmp_path / "excess_loss_vs_samples.png").stat().st_size > 0
    ((key, (x, med, *_)),) = curves(load_table(train), options("--logx")).items()
    r = load_runs(train)
    assert key == (None, None) and x[0] > 0  # x = 0 left out on a log axis
    np.testing.assert_allclose(med, np.median(r.metric("excess_loss")[:, 1:], axis=0),
                               rtol=1e-6)


def test_a_folder_of_spec_folders_uses_the_labels_they_share(sweep, train, tmp_path, capsys):
    d = tmp_path / "both"
    shutil.copytree(train, d / "train")
    shutil.copytree(next((sweep / "groups").iterdir()), d / "group")
    t = load_table(d)
    assert list(t.labels) == ["seed"] and len(t.samples) == 3 + 8
    data = curves(t, options("--x", "steps", "--hue", "seed"))
    assert sorted(data) == [(None, "0"), (None, "1"), (None, "2")]
    assert main(["plot", str(d), "--hue", "lam"]) == 2
    assert "--hue: unknown label 'lam'; known: seed" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--y", "nope"], "--y: unknown metric 'nope'; known: batch_loss, corr_A, "),
    (["--hue", "nope"], "--hue: unknown label 'nope'; known: N, Q, T, batch, "),
    (["--col", "nope"], "--col: unknown label 'nope'"),
    (["--x", "batch"], "--x: curves are against samples or steps, not 'batch'"),
    (["--final"], "--x: --final needs --x LABEL; labels: N, Q, T, batch"),
    (["--final", "--x", "nope"], "--x: unknown label 'nope'"),
    (["--hue", "lam"], "--hue: the runs of one line differ in batch (2, 4) besides the seed"),
    ([], "--hue: the runs of one line differ in batch (2, 4), lam (0, 0.001) besides the "),
    (["--where", "batch=3"], "--where: batch has no value '3'; values: 2, 4"),
    (["--only", "population"], "--only: a study of a `scbjax reproduce` output"),
])
def test_bad_options_are_one_line_naming_the_option(sweep, tmp_path, capsys, argv, message):
    figs = tmp_path / "figs"
    assert main(["plot", str(sweep), "--figures", str(figs), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"scbjax: error: {message}")
    assert not figs.exists()  # refused before anything is drawn


def test_a_tracked_figure_is_replaced_only_when_asked(train, tmp_path, capsys):
    """Commands never write into tracked files unasked: the default OUT/figures/ file of the
    same name, tracked by git, is refused; an explicit --figures there is allowed."""
    if shutil.which("git") is None:
        pytest.skip("no git")
    out = tmp_path / "repo" / "tr"
    shutil.copytree(train, out)
    png = out / "figures" / "excess_loss_vs_samples.png"
    png.parent.mkdir()
    png.write_bytes(b"mine")
    for cmd in (["init", "-q"], ["add", "tr/figures"]):
        subprocess.run(["git", *cmd], cwd=out.parent, check=True, capture_output=True)
    assert main(["plot", str(out)]) == 2
    assert capsys.readouterr().err == (f"scbjax: error: --figures: {png} is tracked by git: "
                                       "give --figures to write there, or another folder\n")
    assert png.read_bytes() == b"mine"
    assert main(["plot", str(out), "--figures", str(png.parent)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


# SPEC with a sample budget instead of steps, and the batch zipped with its learning rate
EQUAL = (SPEC.replace('name = "tiny"', 'name = "equal"').replace("steps = 8", "samples = 32")
         .split("[axes]")[0] + '[axes]\nbatch = [2, 4]\nlr_V = [0.05, 0.1]\n'
         'zip = [["batch", "lr_V"]]\n')


def test_an_equal_samples_sweep_plots_groups_with_different_log_points(tmp_path, capsys):
    (tmp_path / "spec.toml").write_text(EQUAL)
    sw = tmp_path / "sw"
    assert main(["sweep", str(tmp_path / "spec.toml"), "--out", str(sw), "--quiet"]) == 0
    t = load_table(sw)
    assert sorted(set(t.length.tolist())) == [5, 9]  # 8 and 16 steps, logged every 2
    ((_, (x, med, lo, hi, finals)),) = curves(t, options("--final", "--x", "batch")).items()
    np.testing.assert_array_equal(x, [2.0, 4.0])
    for b, f in zip((2, 4), finals):  # each run's own last log point
        g = next(load_runs(d) for d in (sw / "groups").iterdir()
                 if load_runs(d).config.phases[0].steps == 32 // b)
        np.testing.assert_array_equal(f[:, 0], g.final("excess_loss").astype(float))
    data = curves(t, options("--hue", "batch"))
    assert [len(v[0]) for v in data.values()] == [9, 5]
    assert all(v[0][-1] == 32 for v in data.values())  # the budget, in both groups
    assert main(["plot", str(sw), "--figures", str(tmp_path / "f")]) == 2
    assert "differ in batch (2, 4), lr_V" in capsys.readouterr().err  # one line, two groups
