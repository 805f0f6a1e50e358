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


def test_the_api_form_in_the_usage_guide_runs_and_has_the_lines_it_says(tmp_path):
    text = (EXAMPLES.parent / "docs" / "usage.md").read_text()
    part = text.split("## One question three ways")[1]
    code = part.split("```python\n")[1].split("```")[0]
    assert "(8 lines)" in part and len(code.strip().splitlines()) == 8
    tiny = "s.TaskConfig(N=4, T=8, Q=2), 800"
    small = (code.replace("s.TaskConfig(N=10, T=64, Q=2), 200_000", tiny)
             .replace("range(8)", "range(2)").replace('"runs/eq"', repr(str(tmp_path / "eq"))))
    assert small != code and "range(2)" in small and "800" in small
    r = subprocess.run([sys.executable, "-c", small], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = re.findall(r"^(4|16|64)\s+0\.\d+$", r.stdout, re.M)
    assert rows == ["4", "16", "64"], r.stdout
