"""``scbjax bench``: end to end at tiny sizes; the floor's arithmetic count; the grid and its
cost fit."""

import json

import numpy as np

from scbjax.app.bench import flops_per_sample_step
from scbjax.app.bench_grid import fit_cost
from scbjax.app.cli import main


def test_bench_json_end_to_end(capsys):
    rc = main(["bench", "--json", "--seeds", "3", "--steps", "20", "--N", "4", "--T", "6",
               "--Q", "2", "--batch", "4", "--loop-seeds", "1", "--loop-steps", "5",
               "--repeats", "1", "--copy-mb", "2"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    for k in ("seeds", "samples_per_s", "loop_samples_per_s", "floor_samples_per_s",
              "compile_s", "ratio_to_floor", "versions", "machine"):
        assert k in r
    assert r["seeds"] == [3]
    assert all(x > 0 for x in r["samples_per_s"] + r["floor_samples_per_s"] + r["compile_s"])
    assert r["loop_samples_per_s"] > 0
    for a, f, q in zip(r["samples_per_s"], r["floor_samples_per_s"], r["ratio_to_floor"]):
        assert abs(a / f - q) < 1e-9
    for a, f, q in zip(r["samples_per_s"], r["fused_floor_samples_per_s"],
                       r["ratio_to_fused_floor"]):
        assert abs(a / f - q) < 1e-9
    assert r["device"]["platform"] == "cpu" and r["device"]["count"] >= 1
    assert r["bytes_per_seed_step"] == 2 * 4 * (4 * 4 + 6 * 4) and r["copy_bytes_per_s"] > 0
    for i, a in enumerate(r["samples_per_s"]):
        for bound in ("rng", "mem"):
            assert abs(a / r[f"{bound}_bound_samples_per_s"][i] - r[f"ratio_to_{bound}_bound"][i]
                       ) < 1e-9
        assert r["rng_bound_draw"][i] in ("fused", "paired")
        t = min(r["rng_fused_s"][i], r["rng_paired_s"][i])
        assert abs(r["rng_bound_samples_per_s"][i] * t - 3 * 20 * 4) < 1e-6
    assert abs(r["mem_bound_samples_per_s"][0] * r["bytes_per_seed_step"] / 4
               - r["copy_bytes_per_s"]) < 1e-3 * r["copy_bytes_per_s"]
    assert isinstance(r["device"]["kind"], str) and r["device"]["kind"]


def test_bench_breakdown_text(capsys):
    """--breakdown times the step piece by piece: five positive rates, printed as a table."""
    rc = main(["bench", "--breakdown", "--seeds", "2", "--steps", "10", "--N", "4", "--T", "6",
               "--Q", "2", "--batch", "4", "--loop-seeds", "1", "--loop-steps", "3",
               "--repeats", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "breakdown at 2 seeds" in out
    for name in ("uniforms", "fused rng", "sampler", "loss", "gradient", "ppd step"):
        line = next(ln for ln in out.splitlines() if ln.startswith(name))
        assert float(line.split()[-2]) > 0, line


def test_bench_text_and_bad_input(capsys):
    assert main(["bench", "--seeds", "1,x"]) == 2
    assert "seeds" in capsys.readouterr().err
    assert main(["bench", "--Q", "9", "--T", "4"]) == 2
    assert capsys.readouterr().err.startswith("scbjax: error: task.Q")


def test_batch_grid_json(capsys):
    """--batch-grid: one row per (seeds, batch), sample-steps/s = B x seed-steps/s."""
    rc = main(["bench", "--batch-grid", "--json", "--batch-grid-B", "2,3",
               "--batch-grid-seeds", "2", "--steps", "5", "--N", "4", "--T", "6",
               "--repeats", "1", "--bits", "paired"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert [(x["seeds"], x["batch"]) for x in r["rows"]] == [(2, 2), (2, 3)]
    for x in r["rows"]:
        assert x["samples_per_s"] > 0
        assert abs(x["samples_per_s"] - x["batch"] * x["steps_per_s"]) < 1e-6 * x["samples_per_s"]
    assert r["config"]["bits"] == "paired"
    assert main(["bench", "--batch-grid", "--batch-grid-B", "0"]) == 2
    assert "batch_grid_B" in capsys.readouterr().err


def test_flops_count():
    # N=16, T=64, B=8: 6*256 + 128 + 64 + 10*(256 + 1024)/8
    assert flops_per_sample_step(16, 64, 8) == 1536 + 128 + 64 + 1600


def test_bench_grid_end_to_end(tmp_path, capsys):
    """A 2 x 2 x 1 grid: 4 rows, the figure, the Markdown section, and the fit."""
    fig, md = tmp_path / "g.png", tmp_path / "B.md"
    md.write_text("# Benchmarks\n")
    rc = main(["bench", "--grid", "--json", "--grid-N", "4,5", "--grid-T", "6,9",
               "--grid-seeds", "3", "--grid-steps", "4", "--repeats", "1", "--batch", "4",
               "--grid-figure", str(fig), "--grid-md", str(md), "--grid-note", "a test"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert [(x["N"], x["T"], x["seeds"]) for x in r["rows"]] == [
        (N, T, 3) for N in (4, 5) for T in (6, 9)]
    for x in r["rows"]:
        assert x["samples_per_s"] > 0 and abs(
            x["samples_per_s"] / x["floor_samples_per_s"] - x["ratio_to_floor"]) < 1e-9
    assert set(r["fit"]) == {"3"}
    assert fig.stat().st_size > 10_000
    text = md.read_text()
    assert text.startswith("# Benchmarks\n") and "## Grid: `scbjax bench --grid" in text
    assert "| 5 | 9 | 3 |" in text and "a test" in text and "c_TN" in text
    assert main(["bench", "--grid", "--grid-T", "4,x"]) == 2
    assert "grid_T" in capsys.readouterr().err


def test_cost_fit_recovers_known_coefficients():
    c = {"1": 50.0, "T": 3.0, "T N": 0.25, "N^2": 0.5}
    rows = [{"N": N, "T": T, "seeds": 8, "samples_per_s": 1e9 / (
        c["1"] + c["T"] * T + c["T N"] * T * N + c["N^2"] * N * N)}
        for N in (8, 16, 32) for T in (16, 64, 256)]
    rows.append({"N": 8, "T": 16, "seeds": 1, "samples_per_s": 1e6})  # too few points: no fit
    fit = fit_cost(rows)
    assert set(fit) == {"8"} and fit["8"]["r2"] > 1 - 1e-9
    np.testing.assert_allclose([fit["8"]["ns"][k] for k in c], list(c.values()), rtol=1e-6)
