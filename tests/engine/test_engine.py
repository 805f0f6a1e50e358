"""The one engine: RunSpec validation and hashing, the executor against make_train, labels,
checkpoints of another format, and the CLI's options derived from the dataclasses."""

import dataclasses

import numpy as np
import pytest

import scbjax as s
from scbjax.engine import checkpoint
from scbjax.app.cli import build_parser, main
from scbjax.app.commands import config_from_args
from scbjax.util.errors import ConfigError
from scbjax.engine.executor import Log, run_spec
from scbjax.engine.spec import FORMAT, RunSpec, grid, run
from scbjax.engine.store import load_runs
from scbjax.sim.train import seed_keys, train_many

CFG = s.TrainConfig(task=s.TaskConfig(N=4, T=5, Q=2),
                    phases=(s.Phase(20, 4, 0.05, 0.05, 1e-3), s.Phase(10, 8, 0.02, 0.02, 0.0)),
                    log_every=5)
QUIET = Log(quiet=True)


def test_executor_equals_make_train_and_reuses_by_hash(tmp_path, capsys):
    spec = RunSpec(CFG, grid(range(3), {"arm": "a"}), chunk_steps=10)
    r = run_spec("x", spec, tmp_path / "x", log=QUIET)
    ref = train_many(CFG, seed_keys(np.arange(3)))
    for name in ("excess_loss", "corr_V", "dist_A"):
        np.testing.assert_allclose(r.metric(name), np.asarray(ref.metrics[name]), rtol=2e-6,
                                   atol=2e-7)
    np.testing.assert_array_equal(r.samples, [[0, 20, 40, 60, 80, 120, 160]] * 3)
    again = run_spec("x", spec, tmp_path / "x", log=Log())
    assert "finished earlier, reused" in capsys.readouterr().err
    np.testing.assert_array_equal(again.metric("corr_V"), r.metric("corr_V"))


def test_run_settings_broadcast_and_validation():
    spec = RunSpec(CFG, (run(0, lr=0.1), run(1, lr_V=(0.1, 0.2), lr_A=0.3, batch=2)))
    st = spec.validate().settings()
    np.testing.assert_allclose(st["lr_V"], [[0.1, 0.1], [0.1, 0.2]])
    np.testing.assert_allclose(st["lr_A"], [[0.1, 0.1], [0.3, 0.3]])
    np.testing.assert_array_equal(st["batch"], [[4, 8], [2, 2]])
    assert spec.masked() == [True, True] and spec.max_batch() == [4, 8]
    bad = [
        (RunSpec(CFG, (run(2**32),)), "x.runs[0].seed"),
        (RunSpec(CFG, (run(0, lr=(0.1, 0.2, 0.3)),)), "x.runs[0].lr_V"),
        (RunSpec(CFG, (run(0, lr=1e-50),)), "x.runs[0].lr_V"),
        (RunSpec(CFG, (run(0, lam=1e39),)), "x.runs[0].lam"),
        (RunSpec(CFG, (run(0, batch=9, dataset=8),)), "x.runs[0].dataset"),
        (RunSpec(CFG, (run(0, {"a": 1}), run(1, {"b": 1}))), "x.runs[1].labels"),
        (RunSpec(CFG, (run(0), run(1, dataset=8))), "x.runs"),
        (RunSpec(CFG, ()), "x.runs"),
    ]
    for sp, field in bad:
        with pytest.raises(ConfigError) as e:
            sp.validate("x")
        assert e.value.field == field, (field, str(e.value))


def test_hash_covers_what_changes_the_numbers():
    a = RunSpec(CFG, grid(range(2)))
    assert a.key() == RunSpec(CFG, grid(range(2)), chunk_steps=5).key()  # chunks: no change
    for b in (RunSpec(CFG, grid(range(3))), RunSpec(CFG, grid(range(2), lam=0.1)),
              RunSpec(dataclasses.replace(CFG, prox="precond"), grid(range(2))),
              RunSpec(CFG, tuple(run(i, {"seed": i}, fold=(1,)) for i in range(2)))):
        assert b.key() != a.key()
    assert a.key("t1") != a.key("t2")


def test_checkpoint_of_another_format_restarts_the_spec_said_so(tmp_path, capsys):
    spec = RunSpec(CFG, grid(range(2)), chunk_steps=5)
    d = tmp_path / "x"
    ref = run_spec("x", spec, d, log=QUIET)
    (d / "results.npz").unlink()
    (d / "run.json").unlink()
    # a checkpoint of an older format (positional leaves, format 1)
    np.savez(d / "checkpoint.npz", **{"state/000": np.zeros(3), "group": np.asarray("old"),
                                      "next_interval": np.asarray(3)})
    r = run_spec("x", spec, d, log=Log())
    err = capsys.readouterr().err
    assert f"has format None, this version writes {FORMAT}" in err
    assert "restarting this spec from scratch" in err
    np.testing.assert_array_equal(r.metric("excess_loss"), ref.metric("excess_loss"))
    # a truncated checkpoint: named, restarted
    (d / "results.npz").unlink()
    (d / "run.json").unlink()
    (d / "checkpoint.npz").write_bytes(b"PK\x03\x04 truncated")
    r = run_spec("x", spec, d, log=Log())
    err = capsys.readouterr().err
    assert str(d / "checkpoint.npz") in err and "from scratch" in err
    np.testing.assert_array_equal(r.metric("corr_A"), ref.metric("corr_A"))


def test_resume_from_a_checkpoint_equals_straight_through(tmp_path, monkeypatch):
    spec = RunSpec(CFG, grid(range(2)), chunk_steps=5)
    ref = run_spec("x", spec, tmp_path / "ref", log=QUIET)
    calls = {"n": 0}
    real = checkpoint.save

    def save_then_stop(*a, **k):
        real(*a, **k)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_spec("x", spec, tmp_path / "x", log=QUIET)
    monkeypatch.setattr(checkpoint, "save", real)
    assert (tmp_path / "x" / "checkpoint.npz").exists()
    r = run_spec("x", spec, tmp_path / "x", log=QUIET)
    for k in ref.arrays:
        np.testing.assert_array_equal(r[k], ref[k], err_msg=k)


def test_cli_defaults_equal_trainconfig_defaults():
    a = build_parser().parse_args(["train"])
    assert config_from_args(a) == s.TrainConfig()


def test_train_config_file_equals_the_same_flags(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text('optimizer = "ppd"\nmu = "estimate"\nlog_every = 10\nprox = "precond"\n'
                    '[task]\nN = 4\nT = 5\nQ = 2\n'
                    '[[phases]]\nsteps = 20\nbatch = 4\nlr_V = 0.05\nlr_A = 0.05\nlam = 0.001\n')
    flags = ["--N", "4", "--T", "5", "--Q", "2", "--mu", "estimate", "--log-every", "10",
             "--prox", "precond", "--steps", "20", "--batch", "4", "--lr", "0.05",
             "--lam", "0.001"]
    c1 = config_from_args(build_parser().parse_args(["train", "--config", str(toml)]))
    c2 = config_from_args(build_parser().parse_args(["train", *flags]))
    assert c1 == c2
    base = tmp_path / "b.toml"  # the same under [base], as in a sweep spec
    base.write_text("[base]\n" + toml.read_text().replace("[task]", "[base.task]")
                    .replace("[[phases]]", "[[base.phases]]"))
    assert config_from_args(build_parser().parse_args(["train", "--config", str(base)])) == c1
    # flags override the file; then both runs are the same results
    c3 = config_from_args(build_parser().parse_args(["train", "--config", str(toml), "--T", "6"]))
    assert c3.task.T == 6 and c3.task.N == 4
    o1, o2 = tmp_path / "o1", tmp_path / "o2"
    assert main(["train", "--config", str(toml), "--seeds", "2", "--quiet", "--out", str(o1)]) == 0
    assert main(["train", *flags, "--seeds", "2", "--quiet", "--out", str(o2)]) == 0
    r1, r2 = load_runs(o1), load_runs(o2)
    assert r1.meta["hash"] == r2.meta["hash"]
    np.testing.assert_array_equal(r1.metric("excess_loss"), r2.metric("excess_loss"))
    bad = tmp_path / "bad.toml"
    bad.write_text('[task]\nN = "4"\n')
    assert main(["train", "--config", str(bad)]) == 2
    assert "task.N" in capsys.readouterr().err


def test_a_list_of_runs_is_a_tuple_and_runs_have_a_readable_repr(tmp_path):
    from scbjax.engine.executor import Log, execute
    from scbjax.engine.spec import RunSpec, grid

    cfg = s.TrainConfig(task=s.TaskConfig(N=3, T=4, Q=1), phases=(s.Phase(10, 4),), log_every=5)
    spec = RunSpec(cfg, list(grid(range(2), {"arm": "x"})))
    assert isinstance(spec.runs, tuple) and spec.key() == RunSpec(cfg, spec.runs).key()
    runs = execute({"a": spec}, tmp_path / "o", log=Log(quiet=True))["a"]
    assert repr(runs) == "Runs('a': 2 runs, seeds [0, 1], labels arm=['x'], 3 log points)"


def test_spec_names_cannot_leave_the_output_folder_and_seeds_are_checked(tmp_path):
    from scbjax.core.keys import seed_keys
    from scbjax.engine.executor import Log, execute
    from scbjax.engine.spec import RunSpec, check_name, grid
    from scbjax.util.errors import ConfigError

    cfg = s.TrainConfig(task=s.TaskConfig(N=3, T=4, Q=1), phases=(s.Phase(4, 2),), log_every=2)
    for bad in ("../escape", "a/b", "", "abc\n", ".."):
        with pytest.raises(ConfigError) as e:
            execute({bad: RunSpec(cfg, grid(range(1)))}, tmp_path / "out", log=Log(quiet=True))
        assert e.value.field == f"specs[{bad!r}]"
    assert list(tmp_path.iterdir()) == []  # nothing written, inside or outside
    assert check_name("ppd_N4_T8.x=1+2-3", "f") == "ppd_N4_T8.x=1+2-3"
    for bad in ([-1], [2**32], [0.5]):
        with pytest.raises(ConfigError, match="seeds"):
            seed_keys(bad)


def test_keep_stores_only_the_final_arrays_it_names_and_reuse_needs_them(tmp_path, capsys):
    from scbjax.engine.results import result_bytes
    from scbjax.engine.spec import FINAL, FINAL_SMALL
    full = RunSpec(CFG, grid(range(2)))
    small = dataclasses.replace(full, keep=FINAL_SMALL)
    assert small.key() == full.key()  # what is stored is not what is computed
    r = run_spec("x", small, tmp_path / "x", log=QUIET)
    z = np.load(tmp_path / "x" / "results.npz")
    assert [k for k in FINAL if k in z.files] == list(FINAL_SMALL)
    assert result_bytes(small) == sum(z[k].nbytes for k in z.files if k != "meta")
    assert result_bytes(small) < result_bytes(full)
    assert load_runs(tmp_path / "x").meta["keep"] == list(FINAL_SMALL)
    with pytest.raises(KeyError, match="keep left it out"):
        r["params/A"]
    ref = run_spec("ref", full, tmp_path / "ref", log=QUIET)  # the same numbers
    for k in ("metrics/corr_V", "params/V", "task/P"):
        np.testing.assert_array_equal(r[k], ref[k])
    capsys.readouterr()
    again = run_spec("x", full, tmp_path / "x", log=Log())  # wants A and q: recomputed
    assert "was written without params/A, task/q" in capsys.readouterr().err
    np.testing.assert_array_equal(again["params/A"], ref["params/A"])
    run_spec("x", small, tmp_path / "x", log=Log())  # all stored: a subset is reused
    assert "finished earlier, reused" in capsys.readouterr().err
    for bad in (("params/X",), ["params/V"], "params/V"):
        with pytest.raises(ConfigError, match="keep"):
            dataclasses.replace(full, keep=bad).validate()
