"""A miniature reproduction end to end: every study trains, every figure file and the claims
table are produced; `scbjax plot` redraws from saved results without training."""

import json

import pytest

from scbjax import reproduce
from scbjax.cli import main
from scbjax.reproduce import Claim, claims_table

PAPER_CLAIMS = {"1a", "1b", "1c", "2a", "2b", "3a", "3b", "4a", "4b", "5"}


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
    for name in reproduce.STUDIES:
        assert (results / name / "DONE").is_file()


def test_plot_redraws_from_saved_results_without_training(tiny_run, monkeypatch, capsys):
    _, results, figs = tiny_run
    for name in reproduce.STUDIES:  # any training now would be an error
        monkeypatch.setattr(reproduce.load_study(name), "run",
                            lambda *a, **k: pytest.fail("plot must not train"))
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


def test_resume_skips_finished_studies(tiny_run, monkeypatch, capsys):
    _, results, _ = tiny_run
    for name in reproduce.STUDIES:
        monkeypatch.setattr(reproduce.load_study(name), "run",
                            lambda *a, **k: pytest.fail("finished study rerun"))
    times = reproduce.run_studies("tiny", results, resume=True, log=lambda m: None)
    assert times == {}


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
