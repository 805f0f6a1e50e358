"""Write tests/golden/tiny.json, the digest of a tiny reproduction, from its output folder:

    scbjax reproduce --tiny --out OUT --quiet
    python tests/golden/make_golden.py OUT

Run it on purpose, when a change of the numbers is meant; no test writes the golden file. Per
array of every results.npz: dtype, shape, sha256 of its bytes and, for numbers, a summary
(sum, sum of magnitudes, min and max of the finite values, the count of the others, the first
8 values, to 7 significant digits) for machines whose fingerprint differs; per claim of
claims.json: id, measured, passed. ``tests/app/test_reproduce.py`` imports ``digest`` and
``fingerprint``."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).resolve().parent / "tiny.json"
FIRST = 8


def cpu() -> str | None:
    """The CPU's vendor, family, model and a digest of its feature flags (from /proc/cpuinfo):
    XLA compiles for the host's features, so two x86-64 CPUs with AVX-512 can still round a
    metric differently in its last bit (seen: family 6 model 167 against the golden's CPU)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    info = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        info.setdefault(k.strip(), v.strip())
    flags = hashlib.sha256(" ".join(sorted(info.get("flags", "").split())).encode())
    return (f"{info.get('vendor_id', '?')} family {info.get('cpu family', '?')} model "
            f"{info.get('model', '?')} flags {flags.hexdigest()[:12]}")


def fingerprint() -> dict:
    """What may change float results bit for bit: library versions, CPU architecture, the CPU
    and its features."""
    return {**{p: metadata.version(p) for p in ("jax", "jaxlib", "numpy")},
            "machine": platform.machine(), "cpu": cpu()}


def _g(x) -> float:
    return float(f"{float(x):.7g}")


def summary(a: np.ndarray) -> dict:
    """The numbers of an array, coarsely (a NaN or infinity among the first values stays one);
    abs_sum, the sum of the magnitudes, is the scale a sum's rounding is relative to (a sum
    near zero of values far from it)."""
    x = a.astype(np.float64).ravel()
    fin = x[np.isfinite(x)]
    return {"sum": _g(fin.sum()), "abs_sum": _g(np.abs(fin).sum()),
            "min": _g(fin.min()) if fin.size else None,
            "max": _g(fin.max()) if fin.size else None, "nonfinite": int(x.size - fin.size),
            "first": [_g(v) for v in x[:FIRST]]}


def array_digest(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    d = {"dtype": str(a.dtype), "shape": list(a.shape),
         "sha256": hashlib.sha256(a.tobytes()).hexdigest()}
    if a.dtype.kind in "biuf":
        d["summary"] = summary(a)
    return d


def digest(out: Path) -> dict:
    """Arrays ("study/spec/results.npz:name") and claims of a reproduction's output folder."""
    out = Path(out)
    arrays = {}
    for p in sorted(out.rglob("results.npz")):
        with np.load(p) as z:
            for k in sorted(set(z.files) - {"meta"}):  # meta: the run's sidecar (timings)
                arrays[f"{p.relative_to(out).as_posix()}:{k}"] = array_digest(z[k])
    claims = [{k: c[k] for k in ("id", "measured", "passed")}
              for c in json.loads((out / "claims.json").read_text())]
    return {"arrays": arrays, "claims": claims}


def dumps(d: dict) -> str:
    """JSON with one line per claim and per array (a regenerated file diffs line by line)."""
    def lines(rows):
        return ",\n".join(f"  {r}" for r in rows)

    claims = lines(json.dumps(c, sort_keys=True) for c in d["claims"])
    arrays = lines(f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}"
                   for k, v in sorted(d["arrays"].items()))
    return (f'{{"fingerprint": {json.dumps(d["fingerprint"], sort_keys=True)},\n'
            f'"claims": [\n{claims}\n],\n"arrays": {{\n{arrays}\n}}}}\n')


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    d = {"fingerprint": fingerprint(), **digest(Path(argv[0]))}
    GOLDEN.write_text(dumps(d))
    print(f"{GOLDEN}: {len(d['arrays'])} arrays, {len(d['claims'])} claims")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
