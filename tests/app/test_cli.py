"""End to end: ``scbjax train`` writes results; bad input exits 2 without a traceback."""

import json
import subprocess
import sys

import numpy as np
import pytest

from scbjax.app.cli import main
from scbjax.engine.meta import config_from_dict
from scbjax.engine.store import load_runs
from scbjax.sim.train import log_schedule


def load_run(out):
    runs = load_runs(out)
    meta = dict(runs.meta, config=config_from_dict(runs.meta["config"]))
    return runs.arrays, meta


def test_train_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--N", "4", "--T", "5", "--Q", "2", "--seeds", "3", "--steps", "50",
               "--batch", "4", "--log-every", "10", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "3 seeds x 50 steps in one compiled group" in text
    assert "excess_loss" in text and "corr_V" in text
    arrays, meta = load_run(out)
    assert arrays["metrics/excess_loss"].shape == (3, 6)
    assert arrays["params/V"].shape == (3, 4, 4) and arrays["params/A"].shape == (3, 5, 4)
    assert arrays["task/q"].shape == (3, 5, 4)
    np.testing.assert_array_equal(arrays["seeds"], [0, 1, 2])
    np.testing.assert_array_equal(arrays["samples"], [np.arange(6) * 40] * 3)
    assert meta["config"].task.N == 4 and meta["config"].phases[0].steps == 50
    np.testing.assert_array_equal(arrays["steps"], log_schedule(meta["config"])[0])
    assert meta["versions"]["jax"] and meta["timings"]["run_s"] > 0
    assert "git_commit" in meta and meta["devices"]


def test_phases_and_options(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--N", "3", "--T", "4", "--Q", "1", "--seeds", "2",
               "--phase", "steps=20,batch=4,lr=0.05,lam=0.001",
               "--phase", "steps=10,batch=16,lr=0.01,lam=0",
               "--mu", "estimate", "--projection", "simplex", "--log-every", "10",
               "--quiet", "--out", str(out)])
    assert rc == 0
    arrays, meta = load_run(out)
    assert [p.batch for p in meta["config"].phases] == [4, 16]
    assert meta["config"].projection_A == "simplex" and meta["config"].mu == "estimate"
    np.testing.assert_allclose(arrays["settings/lam"], [[1e-3, 0.0]] * 2)
    np.testing.assert_array_equal(arrays["samples"], [[0, 40, 80, 240]] * 2)


@pytest.mark.parametrize("args, field", [
    (["--N", "1"], "N"),
    (["--Q", "30", "--T", "4"], "Q"),
    (["--Q", "0"], "Q"),
    (["--lr", "0"], "lr_V"),
    (["--lr-A", "-0.1"], "lr_A"),
    (["--batch", "0"], "batch"),
    (["--lam", "nan"], "lam"),
    (["--seeds", "0"], "seeds"),
])
def test_bad_input_exit_status_2(args, field, capsys):
    assert main(["train", *args, "--steps", "10", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scbjax: error: ") and field in err
    assert "Traceback" not in err


def test_bad_input_subprocess_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "scbjax", "train", "--Q", "99"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2
    assert "Q: sparsity must be <= T" in r.stderr and "Traceback" not in r.stderr


def test_phase_option_takes_every_phase_field_by_name():
    """--phase is derived from Phase: every field is a NAME=VALUE pair, lr sets both rates,
    fields left out keep their defaults."""
    import dataclasses

    from scbjax.app.cli import _phase
    from scbjax.sim.config import Phase

    text = {int: ("7", 7), float: ("0.25", 0.25), bool: ("true", True)}
    for f in dataclasses.fields(Phase)[1:]:  # steps (required) first, then every other field
        arg, want = text[type(f.default)]
        assert getattr(_phase(f"steps=3,{f.name}={arg}"), f.name) == want
    assert _phase("steps=5,lr=0.2") == Phase(steps=5, lr_V=0.2, lr_A=0.2)
    assert _phase("steps=5, lam = 0.1") == Phase(steps=5, lam=0.1)


def test_malformed_phase_is_usage_error(capsys):
    assert main(["train", "--phase", "10,4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scbjax: error: argument --phase: want NAME=VALUE pairs")
    assert err.count("\n") == 1  # one line, no usage block


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ["--N", "--T", "--Q", "--seeds", "--optimizer", "--lr-V", "--lr-A", "--lam",
                 "--batch", "--steps", "--log-every", "--out", "--phase", "--mu", "--population"]:
        assert flag in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "train" in capsys.readouterr().out


def test_broken_pipe_exits_141_quietly():
    """``scbjax bench | head``: the reader going away ends the command with 141, no message."""
    code = ("import sys, scbjax.app.cli as c\n"
            "def gone(a):\n    raise BrokenPipeError(32, 'Broken pipe')\n"
            "c.cmd_bench = gone\nsys.exit(c.main(['bench']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 141 and r.stderr == "", (r.returncode, r.stderr)


def test_bare_command_prints_the_usage_and_one_error_line(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("usage: scbjax ") and "COMMAND" in out
    assert err.startswith("scbjax: error: ") and err.count("\n") == 1


def test_train_config_accepts_a_saved_run_json(tmp_path, capsys):
    """``train --config A/run.json`` trains A's own config again: same config, same hash."""
    a, b = tmp_path / "A", tmp_path / "B"
    assert main(["train", "--N", "3", "--T", "4", "--Q", "1", "--seeds", "2", "--phase",
                 "steps=10,batch=4,lr=0.05", "--phase", "steps=5,batch=2,lr=0.01",
                 "--log-every", "5", "--optimizer", "sgd", "--out", str(a), "--quiet"]) == 0
    assert main(["train", "--config", str(a / "run.json"), "--seeds", "2", "--out", str(b),
                 "--quiet"]) == 0
    ra, rb = json.loads((a / "run.json").read_text()), json.loads((b / "run.json").read_text())
    assert rb["config"] == ra["config"] and rb["config"]["optimizer"] == "sgd"
    assert len(rb["config"]["phases"]) == 2 and rb["hash"] == ra["hash"]
    assert main(["train", "--config", str(a / "run.json"), "--seeds", "3", "--out",
                 str(tmp_path / "C"), "--quiet"]) == 0  # other seeds: the same config, a new hash
    rc = json.loads((tmp_path / "C" / "run.json").read_text())
    assert rc["config"] == ra["config"] and rc["hash"] != ra["hash"]
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**ra, "config": {**ra["config"], "log_every": "x"}}))
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "D")]) == 2
    assert "config.log_every" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", [["reproduce", "--tiny"], ["sweep", "spec.toml"]])
@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5", ""])
def test_workers_must_be_a_positive_integer(cmd, bad, capsys):
    assert main([*cmd, "--workers", bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scbjax: error: ") and "--workers" in err and err.count("\n") == 1
