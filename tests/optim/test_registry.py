"""Optimizers by name: a user's own optimizer from a file of theirs, through execute and the CLI;
its code enters the configuration hash."""

from __future__ import annotations

import numpy as np
import optax
import pytest

import scbjax as s
from scbjax.engine import group
from scbjax.optim import registry
from scbjax.app.cli import main
from scbjax.util.errors import ConfigError
from scbjax.engine.executor import Log, execute
from scbjax.engine.spec import RunSpec, grid

PLUGIN = '''import optax
import scbjax


def momentum(config):
    """SGD with heavy-ball momentum, the rates injected per phase."""
    return optax.chain(optax.trace(decay={decay}), scbjax.scale_by_lr())


scbjax.register_optimizer("momentum", momentum)
'''


def _cfg(opt: str) -> s.TrainConfig:
    return s.TrainConfig(task=s.TaskConfig(N=4, T=6, Q=2), phases=(s.Phase(40, 8, 0.05, 0.05),),
                         optimizer=opt, log_every=20)


def test_unknown_optimizer_names_the_registered_ones():
    with pytest.raises(ConfigError) as e:
        _cfg("lbfgs").validate()
    assert e.value.field == "optimizer"
    assert "'ppd', 'sgd', 'adam'" in str(e.value)


def test_built_in_names_cannot_be_replaced_and_names_are_checked():
    with pytest.raises(ConfigError):
        registry.register_optimizer("ppd", lambda c: optax.identity())
    for bad in ("", "1x", "a b", None):
        with pytest.raises(ConfigError):
            registry.register_optimizer(bad, lambda c: optax.identity())
    with pytest.raises(ConfigError):
        registry.register_optimizer("fine_name", "not callable")
    assert registry.digest("ppd") == "" and registry.names()[:3] == ("ppd", "sgd", "adam")


def test_user_optimizer_runs_through_execute_and_its_code_enters_the_hash(tmp_path,
                                                                          monkeypatch):
    plug = tmp_path / "my_opt.py"
    plug.write_text(PLUGIN.format(decay=0.9))
    s.load_plugin(plug)
    assert "momentum" in registry.names() and registry.digest("momentum")
    spec = RunSpec(_cfg("momentum"), grid(range(2)))
    r1 = execute({"m": spec}, tmp_path / "out", log=Log(quiet=True))["m"]
    sgd = execute({"s": RunSpec(_cfg("sgd"), grid(range(2)))}, tmp_path / "sgd",
                  log=Log(quiet=True))["s"]
    assert np.isfinite(r1.final("dist_A")).all()
    assert not np.allclose(r1.final("dist_A"), sgd.final("dist_A"))  # momentum did something

    real = group.make_stepper

    def no_training(*a, **k):
        raise AssertionError("trained")

    monkeypatch.setattr(group, "make_stepper", no_training)
    again = execute({"m": spec}, tmp_path / "out", log=Log(quiet=True))["m"]  # same code: reused
    np.testing.assert_array_equal(again.metric("dist_A"), r1.metric("dist_A"))

    key1 = spec.key()
    plug.write_text(PLUGIN.format(decay=0.5))  # other code under the same name
    s.load_plugin(plug)
    assert spec.key() != key1
    with pytest.raises(ConfigError, match="another configuration"):  # not reused, and not
        execute({"m": spec}, tmp_path / "out", log=Log(quiet=True))  # replaced unasked
    with pytest.raises(AssertionError, match="trained"):  # with overwrite: trained anew
        execute({"m": spec}, tmp_path / "out", log=Log(quiet=True), overwrite=True)
    monkeypatch.setattr(group, "make_stepper", real)
    r2 = execute({"m": spec}, tmp_path / "out", log=Log(quiet=True), overwrite=True)["m"]
    assert not np.allclose(r2.final("dist_A"), r1.final("dist_A"))
    # a built-in's hash carries no code digest: the same key as before the registry existed
    # (computed at commit 1148a33 as 26ab3f9a00ef374e under format 2; format 3, which embeds
    # the configuration in results.npz, gives the value below)
    assert RunSpec(_cfg("sgd"), grid(range(2))).key() == "cc377948e6e049e7"


def test_cli_train_with_a_plugin(tmp_path, capsys):
    plug = tmp_path / "plug.py"
    plug.write_text(PLUGIN.format(decay=0.8).replace('"momentum"', '"momentum_cli"'))
    out = tmp_path / "run"
    argv = ["train", "--plugin", str(plug), "--optimizer", "momentum_cli", "--N", "4", "--T",
            "6", "--Q", "2", "--steps", "20", "--log-every", "10", "--seeds", "2", "--out",
            str(out), "--quiet"]
    assert main(argv) == 0
    assert (out / "results.npz").is_file()
    capsys.readouterr()
    assert main(["train", "--plugin", str(tmp_path / "missing.py"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--plugin" in err[0] and "missing.py" in err[0]
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    assert main(["train", "--plugin", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.py" in err[0] and "boom" in err[0]
