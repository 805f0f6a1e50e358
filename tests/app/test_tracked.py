"""Nothing tracked is written unasked: a reproduction run from a clone leaves `git status` clean,
a --tiny run never writes into the README's figures, every figure carries its mode and commit,
and bench writes no file by default."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from scbjax.app.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _git(*args, cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    if shutil.which("git") is None or subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT,
            capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    dst = tmp_path_factory.mktemp("clone") / "repo"
    _git("clone", "--quiet", str(ROOT), str(dst), cwd=ROOT)
    return dst


@pytest.fixture(scope="module")
def clone_run(clone):
    """``scbjax reproduce --tiny --only population`` with the defaults, from the clone's root."""
    here = os.getcwd()
    os.chdir(clone)
    try:
        rc = main(["reproduce", "--tiny", "--only", "population", "--quiet"])
    finally:
        os.chdir(here)
    return rc, clone / "results" / "reproduce-tiny"


def test_reproduce_from_a_clone_leaves_git_status_clean(clone, clone_run, monkeypatch,
                                                         capsys):
    monkeypatch.chdir(clone)
    assert clone_run[0] == 0
    assert _git("status", "--porcelain", cwd=clone) == ""
    figs = clone / "results" / "reproduce-tiny" / "figures"
    png = figs / "fig6_population.png"
    assert png.is_file() and (figs / "fig6_population.pdf").is_file()
    info = Image.open(png).info.get("Description", "")
    assert "reproduce --tiny" in info and "scbjax" in info
    # plot redraws into RESULTS_DIR/figures by default, still nothing tracked touched
    assert main(["plot", "results/reproduce-tiny", "--only", "population"]) == 0
    assert _git("status", "--porcelain", cwd=clone) == ""


def test_tiny_figures_never_go_into_tracked_files(clone, clone_run, tmp_path, capsys):
    tracked = clone / "figures"
    assert any(tracked.iterdir())
    before = {p.name: p.read_bytes() for p in tracked.iterdir()}
    out = tmp_path / "o"
    rc = main(["reproduce", "--tiny", "--only", "population", "--out", str(out), "--figures",
               str(tracked), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--figures" in err[0] and "tracked" in err[0]
    assert not out.exists()  # refused before anything ran
    assert main(["plot", str(clone_run[1]), "--only", "population", "--figures",
                 str(tracked)]) == 2
    assert {p.name: p.read_bytes() for p in tracked.iterdir()} == before


def test_bench_writes_no_file_by_default():
    a = build_parser().parse_args(["bench", "--grid"])
    assert a.grid_md == "" and a.grid_figure == ""


def test_version_and_the_files_a_research_tool_carries(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("scbjax ")
    for name in ("LICENSE", "CITATION.cff", "CHANGELOG.md"):
        assert (ROOT / name).is_file(), name
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert "2410.23438" in (ROOT / "CITATION.cff").read_text()
