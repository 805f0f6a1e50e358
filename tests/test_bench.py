"""``scbjax bench``: end to end at tiny sizes; the floor's arithmetic count."""

import json

from scbjax.bench import flops_per_sample_step
from scbjax.cli import main


def test_bench_json_end_to_end(capsys):
    rc = main(["bench", "--json", "--seeds", "3", "--steps", "20", "--N", "4", "--T", "6",
               "--Q", "2", "--batch", "4", "--loop-seeds", "1", "--loop-steps", "5",
               "--repeats", "1"])
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


def test_bench_breakdown_text(capsys):
    """--breakdown times the step piece by piece: five positive rates, printed as a table."""
    rc = main(["bench", "--breakdown", "--seeds", "2", "--steps", "10", "--N", "4", "--T", "6",
               "--Q", "2", "--batch", "4", "--loop-seeds", "1", "--loop-steps", "3",
               "--repeats", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "breakdown at 2 seeds" in out
    for name in ("uniforms", "sampler", "loss", "gradient", "ppd step"):
        line = next(ln for ln in out.splitlines() if ln.startswith(name))
        assert float(line.split()[-2]) > 0, line


def test_bench_text_and_bad_input(capsys):
    assert main(["bench", "--seeds", "1,x"]) == 2
    assert "seeds" in capsys.readouterr().err
    assert main(["bench", "--Q", "9", "--T", "4"]) == 2
    assert capsys.readouterr().err.startswith("scbjax: error: task.Q")


def test_flops_count():
    # N=16, T=64, B=8: 6*256 + 128 + 64 + 10*(256 + 1024)/8
    assert flops_per_sample_step(16, 64, 8) == 1536 + 128 + 64 + 1600
