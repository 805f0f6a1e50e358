"""The scripts in examples/ run at a tiny size and print what they promise."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"
WANT = {
    "equal_samples.py": r"B4: median final rel dist_A \d\.\d+\nB16: .*\nB64: ",
    "custom_task.py": r"final corr_A: \[",
    "own_optimizer.py": r"sgd: median final excess loss \d.*\nheavy_ball: median final excess",
}


@pytest.mark.parametrize("name", sorted(WANT))
def test_example_runs_at_a_tiny_size(name, tmp_path):
    args = [sys.executable, str(EXAMPLES / name), "--tiny"]
    if name != "custom_task.py":
        args += ["--out", str(tmp_path / "out")]
    r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.search(WANT[name], r.stdout), r.stdout
    assert not (tmp_path / "results").exists()  # writes only where it is told


def test_every_example_is_tested():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(WANT)
