"""A miniature reproduction end to end: every study trains, every figure file and the claims
table are produced; `scbjax plot` redraws from saved results without training."""

import dataclasses
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from scbjax.app import reproduce
from scbjax.app.cli import main
from scbjax.app.reproduce import claims_table
from scbjax.engine import group
from scbjax.engine.outdir import JOB_FILE
from scbjax.studies.base import Claim
from conftest import cached_env, wait_for_file
from figure_checks import problems

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
_spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
PAPER_CLAIMS = {"1b", "1c", "2b", "2c", "3a", "3b", "4a", "4b", "5", "6a", "6b", "6c", "6d"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro")
    results, figs = out / "results", out / "figures"
    rc = main(["reproduce", "--tiny", "--out", str(results), "--figures", str(figs)])
    return rc, results, figs


def expected_stems():
    return {stem for name in reproduce.STUDIES for stem in reproduce.load_study(name).FIGURES}


def test_tiny_reproduction_produces_every_figure_and_the_claims_table(tiny_run, capsys):
    rc, results, figs = tiny_run
    assert rc == 0
    stems = expected_stems()
    assert {"fig1_two_stage", "fig2_stage_lengths", "fig3_transfer", "fig4_vs_sgd",
            "fig5_softmax", "fig6_population"} <= stems
    for stem in stems:
        for ext in ("png", "pdf"):
            f = figs / f"{stem}.{ext}"
            assert f.is_file() and f.stat().st_size > 1000, f
    claims = json.loads((results / reproduce.CLAIMS_FILE).read_text())
    ids = {c["id"] for c in claims}
    assert PAPER_CLAIMS <= ids, PAPER_CLAIMS - ids
    for c in claims:
        assert c["measured"] and c["criterion"] and isinstance(c["passed"], bool), c
    assert json.loads((results / JOB_FILE).read_text())["mode"] == "tiny"
    for name in reproduce.STUDIES:
        for spec in reproduce.study_specs(name, "tiny"):
            assert (results / name / spec / "results.npz").is_file(), (name, spec)
            assert not (results / name / spec / "checkpoint.npz").exists()


def _close_numbers(got: str, want: str, rtol: float, atol: float) -> bool:
    """The same text around its numbers, each within one unit of its last printed digit
    (plus rtol and atol) of the golden one."""
    if NUMBER.sub("#", got) != NUMBER.sub("#", want):
        return False
    for x, y in zip(NUMBER.findall(got), NUMBER.findall(want)):
        mantissa, _, exp = y.lower().partition("e")
        unit = 10.0 ** (int(exp or 0) - len(mantissa.partition(".")[2]))
        if abs(float(x) - float(y)) > unit + rtol * abs(float(y)) + atol:
            return False
    return True


def test_tiny_results_equal_the_golden_digest(tiny_run):
    """Every array of every results.npz and every claim (id, measured, passed) against
    tests/golden/tiny.json (written by tests/golden/make_golden.py, never by a test). On any
    machine: dtype and shape exactly, the arrays' summaries (sum, min, max, first values)
    within rtol 1e-4 (atol 1e-6; a sum also within 1e-4 of its values' magnitudes summed, the
    first values within 1e-3 of the array's largest magnitude: values near zero move most,
    1.5e-4 of it seen on a Zen 3 EPYC against the golden Intel's), the claims' ids and
    verdicts exactly and their numbers within that or one unit of their last printed digit;
    floating point may differ in the last bits on another CPU or jax. Where the golden file's
    machine fingerprint (jax, jaxlib and numpy versions, CPU architecture, the CPU's model and
    feature flags) is this machine's, also bit for bit: every array's sha256 and the claims'
    text."""
    _, results, _ = tiny_run
    want = json.loads((GOLDEN / "tiny.json").read_text())
    got = make_golden.digest(results)
    assert sorted(got["arrays"]) == sorted(want["arrays"])
    assert [(c["id"], c["passed"]) for c in got["claims"]] == [
        (c["id"], c["passed"]) for c in want["claims"]]
    rtol, atol = 1e-4, 1e-6
    for name, w in want["arrays"].items():
        g = got["arrays"][name]
        assert (g["dtype"], g["shape"]) == (w["dtype"], w["shape"]), name
        if "summary" not in w:  # not numbers (labels): no rounding to differ in
            assert g["sha256"] == w["sha256"], name
            continue
        gs, ws = g["summary"], w["summary"]
        assert gs["nonfinite"] == ws["nonfinite"], name
        for k in ("sum", "min", "max", "first"):
            # also relative to the array's scale: a sum near 0 cancels (softmax's A); an early
            # correlation near 0 moves most with the CPU's float32 sums
            big = max(abs(gs["min"] or 0.0), abs(gs["max"] or 0.0))
            scale = gs["abs_sum"] if k == "sum" else big
            tol = atol + {"sum": rtol * scale, "first": 10 * rtol * scale}.get(k, 0.0)
            np.testing.assert_allclose(np.asarray(gs[k], float), np.asarray(ws[k], float),
                                       rtol=rtol, atol=tol, err_msg=f"{name} {k}")
    for g, w in zip(got["claims"], want["claims"]):
        assert _close_numbers(g["measured"], w["measured"], rtol, atol), (g, w)
    if want["fingerprint"] == make_golden.fingerprint():
        exact = ("dtype", "shape", "sha256")
        assert {n: [a[k] for k in exact] for n, a in got["arrays"].items()} == {
            n: [a[k] for k in exact] for n, a in want["arrays"].items()}
        assert got["claims"] == want["claims"]


def test_close_numbers_of_the_claims():
    assert _close_numbers("ppd 0.717 vs 1.2e-05 (2 seeds)", "ppd 0.718 vs 1.3e-05 (2 seeds)",
                          1e-4, 0.0)
    assert not _close_numbers("ppd 0.715 vs 1.2e-05", "ppd 0.717 vs 1.2e-05", 1e-4, 0.0)
    assert not _close_numbers("ppd 0.717 (4 seeds)", "ppd 0.717 (2 seeds)", 1e-4, 0.0)
    assert not _close_numbers("ppd n/a", "ppd 0.717", 1e-4, 0.0)


def test_plot_redraws_from_saved_results_without_training(tiny_run, monkeypatch, capsys):
    _, results, figs = tiny_run
    monkeypatch.setattr(group, "make_stepper", lambda *a, **k: pytest.fail("plot must not "
                                                                           "train"))
    before = json.loads((results / reproduce.CLAIMS_FILE).read_text())
    redrawn = figs.parent / "redrawn"
    assert main(["plot", str(results), "--figures", str(redrawn)]) == 0
    text = capsys.readouterr().out
    assert "passed" in text and "failed" in text
    assert {p.stem for p in redrawn.glob("*.png")} == expected_stems()
    # the same claims as the reproduce run: they are computed from the saved results alone
    assert json.loads((results / reproduce.CLAIMS_FILE).read_text()) == before
    n_pass = sum(c["passed"] for c in before)
    assert f"{n_pass} passed, {len(before) - n_pass} failed" in text


def test_every_study_figure_reads_like_a_papers(tiny_run):
    """Each figure drawn from the saved tiny results: Greek letters in mathtext, no code in any
    text, a panel letter on every panel, no constant data line, everything inside the canvas,
    no overlaps (tests/figure_checks.py)."""
    from scbjax.studies import plots

    _, results, _ = tiny_run
    found = {}
    for name in reproduce.STUDIES:
        study = reproduce.load_study(name)
        with plots.style():
            figs = study.figures(reproduce.load_results(name, "tiny", results),
                                 study.MODES["tiny"])
            for stem, fig in figs.items():
                found[stem] = problems(fig)
                plots.plt.close(fig)
    assert set(found) == expected_stems()
    assert {k: v for k, v in found.items() if v} == {}


def test_rerun_reuses_finished_runs_without_training(tiny_run, monkeypatch, capsys):
    _, results, _ = tiny_run
    monkeypatch.setattr(group, "make_stepper", lambda *a, **k: pytest.fail("finished spec "
                                                                           "rerun"))
    times = reproduce.run_studies("tiny", results, log=lambda m: None)
    assert set(times) == set(reproduce.STUDIES)
    assert capsys.readouterr().err.count("finished earlier, reused") == sum(
        len(reproduce.study_specs(n, "tiny")) for n in reproduce.STUDIES)


def test_runs_are_addressed_by_label(tiny_run):
    _, results, _ = tiny_run
    rs = reproduce.load_results("scaling", "tiny", results)
    setup = reproduce.load_study("scaling").MODES["tiny"]
    T = rs[f"T{setup.T_fix}"]
    ft = T.select(arm="finetune", rho=0.9, sched="A")
    assert len(ft) == setup.seeds and set(ft.label("arm")) == {"finetune"}
    np.testing.assert_allclose(ft.label("rho"), 0.9)
    np.testing.assert_allclose(ft.metric("corr_V")[:, 0], 0.9, atol=1e-3)  # the start's rho
    assert sorted(v for v in T.values("rho") if v >= 0) == sorted(setup.rhos)
    assert len(T.select(arm="scratch")) == setup.seeds * len(setup.schedules)
    with pytest.raises(KeyError, match="no label 'colour'"):
        T.select(colour="red")
    with pytest.raises(KeyError, match="no run"):
        T.select(arm="finetune", rho=0.33)
    with pytest.raises(KeyError, match="no runs named"):
        rs["nope"]


def test_another_mode_in_out_is_refused_and_nothing_changes(tiny_run, capsys):
    _, results, figs = tiny_run
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    assert main(["reproduce", "--quick", "--only", "population", "--out", str(results),
                 "--figures", str(figs)]) == 2
    err = capsys.readouterr().err
    assert "holds results of mode 'tiny'" in err and err.count("\n") == 1
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()} == before


def test_plan_trains_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(reproduce, "calibrate", lambda: {"s_per_sample_unit": 1e-9,
                                                         "s_per_compile": 1.0})
    assert main(["reproduce", "--quick", "--plan", "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "groups" in text and "samples" in text and "on this machine" in text
    assert not (tmp_path / "o").exists()
    for name in reproduce.STUDIES:
        assert name in text


def test_claims_table_counts_and_wraps():
    cs = [Claim("1", "a claim", "x = 1.23", "x > 1", True),
          Claim("2", "another claim with a rather long name that must be wrapped somewhere",
                "x = 0.5", "x > 1", False)]
    table = claims_table(cs)
    lines = table.splitlines()
    assert lines[-1] == "1 passed, 1 failed"
    assert sum("PASS" in ln for ln in lines) == 1 and sum("FAIL" in ln for ln in lines) == 1
    assert max(len(ln) for ln in lines) < 200


def test_unknown_study_is_a_config_error(tmp_path, capsys):
    assert main(["reproduce", "--tiny", "--only", "nope", "--out", str(tmp_path)]) == 2
    assert "study" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing")]) == 2


def test_killed_reproduce_resumes_to_the_same_results(tiny_run, tmp_path):
    """SIGKILL in the middle of a study, then the same command: it resumes from the last
    checkpoint and ends with the same saved runs and claims as the uninterrupted run."""
    import signal
    import subprocess
    import sys

    _, ref, _ = tiny_run
    out, figs = tmp_path / "out", tmp_path / "figs"
    cmd = [sys.executable, "-m", "scbjax", "reproduce", "--tiny", "--only", "scaling",
           "--out", str(out), "--figures", str(figs)]
    # the worker's compilation cache: the tiny run above compiled these programs already
    env = {**__import__("os").environ, "JAX_PLATFORMS": "cpu", **cached_env()}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_file(p, out, "scaling/*/checkpoint.npz")
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait()
    assert p.returncode == -signal.SIGKILL
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stderr
    for spec in reproduce.study_specs("scaling", "tiny"):
        with np.load(out / "scaling" / spec / "results.npz") as a, \
                np.load(ref / "scaling" / spec / "results.npz") as b:
            assert sorted(a.files) == sorted(b.files)
            for k in set(a.files) - {"meta"}:  # meta: the sidecar (timings)
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{spec}/{k}")
    got = reproduce.check_claims(out, ["scaling"])
    want = [c for c in json.loads((ref / reproduce.CLAIMS_FILE).read_text())
            if c["study"] == "scaling"]
    assert [dataclasses.asdict(c) for c in got] == want


def test_sigint_to_reproduce_exits_130_with_one_line_and_resumes(tmp_path):
    """Issue 12, item 18: SIGINT in the middle of a study: exit 130, one line on stderr naming
    the spec and the step it resumes from (no traceback); the same command resumes there and
    finishes (claims and figures)."""
    import os
    import signal
    import subprocess
    import sys

    out, figs = tmp_path / "out", tmp_path / "figs"
    cmd = [sys.executable, "-m", "scbjax", "reproduce", "--tiny", "--only", "population",
           "--out", str(out), "--figures", str(figs)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **cached_env()}
    p = subprocess.Popen(cmd + ["--quiet"], env=env, text=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        wait_for_file(p, out, "population/*/checkpoint.npz")
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=300)
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 130, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    # where it stopped: in a spec (its step), or between two (a race with the signal)
    assert err.startswith("scbjax: interrupted; ") and f"{out}/population/" in err, err
    assert "run the same command again" in err
    assert not (out / "population" / "B16" / "results.npz").exists()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stderr or "finished earlier, reused" in r.stderr
    assert "S2" in r.stdout and (figs / "fig6_population.png").is_file()


def test_a_merged_groups_compiles_are_counted_once():
    from scbjax.app.reproduce import estimate_seconds
    cal = {"s_per_sample_unit": 1e-9, "s_per_compile": 2.0}
    row = dict(study="scaling", spec="Q1", runs=4, N=4, T=8, steps=10, samples=400, drawn=400,
               compiles=2, model="linear", population=False)
    alone = estimate_seconds({**row, "group": "scaling/Q1"}, cal)
    member = estimate_seconds({**row, "spec": "Q4", "group": "scaling/Q1"}, cal)
    assert alone == pytest.approx(400 * 12 * 4 * 1e-9 + 4.0)
    assert member == pytest.approx(400 * 12 * 4 * 1e-9)  # its group compiled for Q1
