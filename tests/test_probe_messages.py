"""A probe's findings: each was a traceback, a silent wrong reading, a hang or a kill without a
word; each is now one line naming what is wrong (a ConfigError, or ``scbjax: ...`` on stderr)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from scbjax.app import process
from scbjax.app.cli import main
from scbjax.app.sweep import Axes, SweepSpec, spec_from_dict
from scbjax.engine import outdir
from scbjax.engine.spec import RunSpec, run
from scbjax.sim.config import TrainConfig
from scbjax.util import backend, errors, fields, fileio
from scbjax.util.errors import ConfigError
from test_robustness import interrupt_after_checkpoint

B = ["--N", "5", "--T", "6", "--Q", "2", "--steps", "40", "--log-every", "20", "--seeds", "2",
     "--quiet"]
# the runs of the real processes below: one set of compiled programs for all (any --steps)
TRAIN = ["train", "--N", "4", "--T", "6", "--Q", "2", "--batch", "4", "--log-every", "100",
         "--chunk-steps", "1000", "--seeds", "2", "--quiet"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """Environment for this file's training processes: one persistent compilation cache, so
    that only the first compiles (XLA's C++ log is silenced: it says "Loading XLA:CPU AOT
    result ..." on stderr for each cached program, which is not what these tests read)."""
    return {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("xla-cache")),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}


def scbjax(args, cwd, env=None, stdout=subprocess.DEVNULL, timeout=120):
    """``python -m scbjax ARGS`` in a real process: (returncode, stderr)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT), **(env or {})}
    p = subprocess.run([sys.executable, "-m", "scbjax", *args], cwd=cwd, env=env, text=True,
                       stdout=stdout, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stderr


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def error_of(fn) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        fn()
    return e.value


# --- 1. JAX_PLATFORMS naming a platform this machine lacks --------------------------------

HAS_GPU = os.path.exists("/dev/nvidia0")


@pytest.mark.parametrize("platform", [
    "bogus", pytest.param("cuda", marks=pytest.mark.skipif(HAS_GPU, reason="a GPU is here"))])
def test_unavailable_jax_platform_is_one_line_before_training(platform, tmp_path):
    """Was: an AssertionError (cuda) or RuntimeError (tpu, bogus) traceback from the first
    jax.devices()."""
    rc, err = scbjax(["train", *B, "--out", str(tmp_path / "o")], tmp_path,
                     env={"JAX_PLATFORMS": platform})
    line = one_line(err)
    assert rc == 2, err
    assert line.startswith(f"scbjax: error: JAX_PLATFORMS: '{platform}' is not available here ")
    assert line.endswith(": unset it or set it to cpu")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("exc, reason", [
    (RuntimeError("Unable to initialize backend 'tpu': INTERNAL: Failed to open libtpu.so "
                  "(set JAX_PLATFORMS='' to automatically choose an available backend)"),
     "INTERNAL: Failed to open libtpu.so"),
    (AssertionError(), "no device of that platform is visible"),
])
def test_check_platforms_names_jax_platforms(exc, reason, monkeypatch):
    def devices():
        raise exc

    monkeypatch.setenv("JAX_PLATFORMS", "tpu")
    e = error_of(lambda: backend.check_platforms(devices))
    assert e.field == "JAX_PLATFORMS"
    assert str(e) == (f"JAX_PLATFORMS: 'tpu' is not available here ({reason}): unset it or "
                      "set it to cpu")
    monkeypatch.delenv("JAX_PLATFORMS")  # not ours to explain: jax's error as it is
    with pytest.raises(type(exc)):
        backend.check_platforms(devices)


# --- 2. strings for numbers, a list for a tuple ----------------------------------------------


@pytest.mark.parametrize("x, finite", [
    (0.1, True), (3, True), (np.float32(1.5), True), (np.int64(2), True),
    ("0.1", False), (b"1", False), (True, False), (np.bool_(True), False), (None, False),
    (float("nan"), False), (float("inf"), False), (10**400, False)])
def test_is_finite_takes_only_real_numbers(x, finite):
    """Was: True for "0.1" and for True, an OverflowError for 10**400."""
    assert errors.is_finite(x) is finite


@pytest.mark.parametrize("make, field, message", [
    # these already said so on this tree (no TypeError): kept as they are
    (lambda: RunSpec(TrainConfig(), (run(0, lr="0.1"),)).validate(), "runs[0].lr_V",
     "must be a number, got str '0.1'"),
    (lambda: SweepSpec(axes=Axes(lr=("0.1",))).validate(), "axes.lr[0]",
     "must be a number, got str '0.1'"),
    (lambda: SweepSpec(axes=Axes(lr=[0.1])).validate(), "axes.lr",
     "must be a tuple of numbers, got list"),  # was "must be a list"
    (lambda: SweepSpec(axes=Axes(lr=0.1)).validate(), "axes.lr",
     "must be a tuple of numbers, got float"),  # was a TypeError
    (lambda: spec_from_dict({"axes": {"lr": ["0.1"]}}), "axes.lr[0]",
     "must be a number, got str '0.1'"),
    # what a tuple field wants, said in words (was "a tuple of a number", "must be a list
    # (a tuple of a number)"): a list in Python stays refused, the message says what is wanted
    (lambda: fields.check(Axes(lr=[0.1]), "axes"), "axes.lr",
     "must be a tuple of numbers, got list"),
    (lambda: fields.check(Axes(batch=4), "axes"), "axes.batch",
     "must be a tuple of integers, got int"),
    (lambda: fields.from_dict(Axes, {"lr": "0.1"}, "axes"), "axes.lr",
     "must be a list of numbers, got str '0.1'"),
])
def test_a_string_or_a_list_for_numbers_names_the_field(make, field, message):
    e = error_of(make)
    assert e.field == field and str(e) == f"{field}: {message}"


# --- 3. a full disk, a full stdout ------------------------------------------------------------


def _enospc_at_once(f):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _enospc_midway(f):
    f.write(b"new" * 1000)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("write_fn", [_enospc_at_once, _enospc_midway])
def test_disk_full_names_the_path_and_keeps_the_old_file(write_fn, tmp_path):
    """Was: "No space left on device" with no path (and from main, no file named)."""
    path = tmp_path / "results.npz"
    path.write_bytes(b"old")
    e = error_of(lambda: fileio.atomic_write(path, write_fn))
    assert e.field == str(path)
    assert str(e) == f"{path}: cannot write: No space left on device"
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["results.npz"]


def test_rename_refused_names_the_path(tmp_path):
    (tmp_path / "job.json").mkdir()
    e = error_of(lambda: fileio.atomic_write_text(tmp_path / "job.json", "{}"))
    assert str(e) == f"{tmp_path / 'job.json'}: cannot write: Is a directory"
    assert os.listdir(tmp_path) == ["job.json"]


def test_stdout_to_dev_full_is_one_line_naming_stdout(tmp_path, shared_cache):
    """Was: "scbjax: error: No space left on device", nothing saying it was stdout."""
    with open("/dev/full", "w") as full:
        rc, err = scbjax([*TRAIN, "--steps", "1000", "--out", str(tmp_path / "o")], tmp_path,
                         env=shared_cache, stdout=full)
    assert rc == 2, err
    assert one_line(err) == "scbjax: error: stdout: cannot write: No space left on device"


# --- 4-6. what the readers are given: a directory, a FIFO, upper case, repeated keys --------


def test_job_json_as_a_directory_is_named(tmp_path):
    """Was: job_mode "unreadable" (read by `reproduce` as "results of mode 'unreadable'"),
    stored_mode "unreadable ([Errno 21] Is a directory ...)"."""
    job = tmp_path / "job.json"
    job.mkdir()
    for fn in (outdir.job_mode, outdir.stored_mode):
        e = error_of(lambda: fn(tmp_path))
        assert e.field == str(job)
        assert str(e) == f"{job}: cannot read: a directory, not a regular file"


def test_upper_case_json_suffix_is_read_as_json(tmp_path):
    """Was: spec.JSON read as TOML ("not valid TOML")."""
    p = tmp_path / "spec.JSON"
    p.write_text('{"log_every": 5, "task": {"N": 4}}')
    assert fileio.read_table(p, "--config") == {"log_every": 5, "task": {"N": 4}}


@pytest.mark.parametrize("name, text, message", [
    ("c.json", '{"log_every": 5, "log_every": 10}',
     "duplicate key 'log_every' (JSON would keep only the last)"),
    ("c.Json", '{"base": {"task": {"N": 4, "N": 8}}}',
     "duplicate key 'N' (JSON would keep only the last)"),
    # TOML refused repeated keys already
    ("c.toml", "log_every = 5\nlog_every = 10\n", "not valid TOML (Cannot overwrite a value"),
    ("c.toml", "[base]\nseed = 1\n[base]\nseed = 2\n", "not valid TOML (Cannot declare"),
])
def test_repeated_key_is_refused_naming_file_and_key(name, text, message, tmp_path):
    """Was (JSON): the last value won, silently."""
    p = tmp_path / name
    p.write_text(text)
    e = error_of(lambda: fileio.read_table(p, "--config"))
    assert e.field == "--config" and str(e).startswith(f"--config: {p}: {message}")


def test_load_json_refuses_a_repeated_key(tmp_path):
    p = tmp_path / "run.json"
    p.write_text('{"hash": "a", "hash": "b"}')
    e = error_of(lambda: fileio.load_json(p))
    assert str(e) == f"{p}: duplicate key 'hash' (JSON would keep only the last)"


def within(fn, fifo: Path, seconds: float = 10):
    """``fn()``'s exception (or None) if it returns within ``seconds``; else unblock a read of
    ``fifo`` (open it for writing) and fail the test."""
    box: list = []

    def target():
        try:
            fn()
            box.append(None)
        except BaseException as e:
            box.append(e)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # the blocked open returns
        t.join(seconds)
        pytest.fail(f"blocked on the FIFO {fifo}")
    return box[0]


READERS = {
    "load_json": lambda d: fileio.load_json(d / "run.json"),
    "read_text": lambda d: fileio.read_text(d / "run.json", "spec"),
    "read_table": lambda d: fileio.read_table(d / "run.json", "--config"),
    "load_npz": lambda d: fileio.load_npz(d / "run.json"),
    "check_file": lambda d: fileio.check_file(d / "run.json"),
}


@pytest.mark.parametrize("reader", READERS)
def test_a_fifo_is_refused_not_waited_on(reader, tmp_path):
    """Was: load_json, read_text and read_table blocked forever (load_npz: "no such file")."""
    fifo = tmp_path / "run.json"
    os.mkfifo(fifo)
    e = within(lambda: READERS[reader](tmp_path), fifo)
    assert isinstance(e, ConfigError), e
    assert f"{fifo}: " in str(e) and str(e).endswith("cannot read: a FIFO, not a regular file")


def test_plot_of_a_job_json_fifo_is_one_line(tmp_path, capsys):
    """`scbjax plot` reads OUT/job.json first: a FIFO there blocked it forever."""
    os.mkfifo(tmp_path / "job.json")
    rcs: list = []
    assert within(lambda: rcs.append(main(["plot", str(tmp_path)])), tmp_path / "job.json") \
        is None
    assert rcs == [2]
    assert one_line(capsys.readouterr().err) == (
        f"scbjax: error: {tmp_path / 'job.json'}: cannot read: a FIFO, not a regular file")


# --- 7. SIGTERM and SIGHUP --------------------------------------------------------------------


@pytest.mark.parametrize("sig, rc", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_train_as_ctrl_c_does(sig, rc, tmp_path, shared_cache,
                                                      monkeypatch):
    """Was: killed without a word (exit -15 / -1 from the shell's 143 / 129)."""
    for k, v in shared_cache.items():  # (interrupt_after_checkpoint passes os.environ on)
        monkeypatch.setenv(k, v)
    out = tmp_path / "run"
    cmd = [*TRAIN, "--steps", "200000", "--out", str(out)]
    got, err, dt = interrupt_after_checkpoint(cmd, out, "checkpoint.npz", tmp_path, sig=sig)
    assert got == rc, err
    line = one_line(err)
    assert line.startswith(f"scbjax: interrupted by {sig.name}; {out} stopped at step ")
    assert "checkpoint intact: run the same command again to resume" in line
    assert dt < 30
    z = fileio.load_npz(out / "checkpoint.npz")
    assert int(z["next_interval"]) * 100 == int(line.split("stopped at step ")[1].split()[0])


def test_signal_handlers_only_while_a_command_runs():
    """Installed for the command, restored after; a signal ignored (nohup) stays ignored."""
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        with process.signals_as_interrupts():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, None)  # (or: killed)
            with pytest.raises(process.Interrupted) as e:
                os.kill(os.getpid(), signal.SIGHUP)  # the handler runs before the next line
                for _ in range(100):
                    pass
            assert e.value.signum == signal.SIGHUP and e.value.name == "SIGHUP"
            assert isinstance(e.value, KeyboardInterrupt)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for s, h in old.items():
            signal.signal(s, h)
