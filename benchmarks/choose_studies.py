"""Which studies of ``scbjax reproduce --full`` fit the time left on this machine.

Prints ``--only NAME`` options (for ``scbjax reproduce`` / ``scbjax plot``): with
``--budget S``, the unfinished studies whose estimated remaining time (``reproduce.plan`` and
``estimate_seconds`` from a calibration on this device; specs with results in ``--out``
count 0) fits S seconds in all, smallest first, and at least the smallest one (an
interrupted study resumes from its checkpoints next time); with ``--finished``, the
studies whose every spec has its results. ``--plan-file`` gets the plan with the estimates.
Used by benchmarks/device_full.sh.
"""

import argparse
import sys
from pathlib import Path

from scbjax.app import reproduce
from scbjax.engine.store import ARRAYS


def finished(out: Path, rows: list[dict]) -> set[tuple[str, str]]:
    return {(r["study"], r["spec"]) for r in rows if (out / r["study"] / r["spec"] / ARRAYS).exists()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the reproduce --full output folder")
    p.add_argument("--mode", default="full", choices=("tiny", "quick", "full"))
    p.add_argument("--budget", type=float, help="seconds available for training")
    p.add_argument("--finished", action="store_true", help="the studies already complete")
    p.add_argument("--plan-file", type=Path, help="write the plan with the estimates here")
    a = p.parse_args(argv)
    rows = reproduce.plan(a.mode)
    done = finished(a.out, rows)
    studies = list(dict.fromkeys(r["study"] for r in rows))
    if a.finished:
        names = [s for s in studies if all((s, r["spec"]) in done for r in rows if r["study"] == s)]
        print(" ".join(f"--only {s}" for s in names))
        return 0
    if a.budget is None:
        p.error("give --budget or --finished")
    cal = reproduce.calibrate()
    if a.plan_file:
        a.plan_file.write_text(reproduce.format_plan(rows, cal) + "\n")
    left = {s: sum(reproduce.estimate_seconds(r, cal) for r in rows
                   if r["study"] == s and (s, r["spec"]) not in done) for s in studies}
    todo = sorted((t, s) for s, t in left.items() if t > 0)
    chosen, total = [], 0.0
    for t, s in todo:
        if total + t <= a.budget or not chosen:
            chosen.append(s)
            total += t
    print(f"estimated s left per study: {({s: round(t) for s, t in left.items()})}; "
          f"chosen {chosen} ({total:.0f} s of {a.budget:.0f})", file=sys.stderr)
    print(" ".join(f"--only {s}" for s in chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
