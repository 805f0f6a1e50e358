"""Progress a person can read: one updating line on a terminal, one line per chunk in a pipe,
notices on lines of their own, silence when quiet, and a job ETA of training time only."""

import io
import math

import scbjax as s
from scbjax.engine.executor import run_spec
from scbjax.engine.progress import CLEAR, Job, Log
from scbjax.engine.spec import RunSpec, grid


class Tty(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_tty_progress_is_one_updating_line_ended_before_a_notice():
    out = Tty()
    log = Log(stream=out)
    log.progress("step 1/3")
    log.progress("step 2/3")
    assert out.getvalue() == CLEAR + "step 1/3" + CLEAR + "step 2/3"
    log("resumed from here")
    log.progress("step 3/3")
    log.end()
    log.end()  # nothing more: the line is already ended
    assert out.getvalue() == (CLEAR + "step 1/3" + CLEAR + "step 2/3\nresumed from here\n"
                              + CLEAR + "step 3/3\n")


def test_pipe_progress_is_one_line_per_chunk_without_carriage_returns():
    out = io.StringIO()
    log = Log(stream=out)
    log.progress("step 1/2")
    log("a notice")
    log.progress("step 2/2")
    log.end()
    assert out.getvalue() == "step 1/2\na notice\nstep 2/2\n"
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_quiet_prints_nothing():
    for out in (Tty(), io.StringIO()):
        log = Log(quiet=True, stream=out)
        log.progress("step 1/2")
        log("a notice")
        log.end()
        assert out.getvalue() == ""


def test_job_eta_counts_training_time_only():
    job = Job(1000)
    assert math.isnan(job.eta())
    job.done += 500  # reused: done, in no training time
    assert math.isnan(job.eta())
    job.ran(100, 2.0, end=2.0)  # 50 samples/s over 400 left
    assert job.done == 600 and job.trained == 100
    assert math.isclose(job.eta(), 8.0)
    job.ran(150, 2.0, end=4.0)  # two concurrent groups' chunks: 300 samples in 2 s of time
    job.ran(150, 2.0, end=4.0)
    assert math.isclose(job.run_s, 4.0)
    assert math.isclose(job.eta(), 1.0)  # 100 samples/s now, 100 left
    job.ran(200, 1.0, end=5.0)  # past the plan: nothing left
    assert job.eta() == 0.0


def test_run_spec_on_a_tty_updates_one_line_per_group(tmp_path):
    cfg = s.TrainConfig(task=s.TaskConfig(N=4, T=5, Q=2), phases=(s.Phase(20, 4, 0.05, 0.05),),
                        log_every=5)
    spec = RunSpec(cfg, grid(range(2)), chunk_steps=5)
    out, job = Tty(), Job(2 * spec.samples())
    r = run_spec("x", spec, tmp_path / "x", log=Log(stream=out), job=job)
    text = out.getvalue()
    chunks = text.split(CLEAR)
    assert chunks[0] == "" and len(chunks) == 5, text  # 4 chunks, each rewriting the line
    assert all(c.startswith("[x] step") and "sample-steps/s" in c and "job ~" in c
               for c in chunks[1:]), text
    assert "\n" not in "".join(chunks[1:-1]) and chunks[-1].endswith("\n"), text
    assert job.trained == spec.samples() and job.done == spec.samples()
    assert 0 < job.run_s <= r.meta["timings"]["run_s"] + 1e-6  # compilation not counted
    run_spec("x", spec, tmp_path / "x", log=Log(stream=out), job=job)
    assert out.getvalue().endswith("\n[x] finished earlier, reused (" + str(tmp_path / "x")
                                   + ")\n")
