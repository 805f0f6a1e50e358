"""A batched PyTorch trainer for the bench's task, timed in one process with ``scbjax bench``'s
vmapped step (outside the test suite; needs torch: ``pip install torch --index-url
https://download.pytorch.org/whl/cpu``).

The same task and method as ``scbjax bench``: N = 16, T = 64, Q = 2, B = 8, ppd with the true
mu, affine projections of the columns of V and A, the soft l1 prox on A (lambda = 1e-3,
lr 0.01, prox then project), uniform start, closed-form gradients of the batch MSE, the seeds
as a tensor axis (S x ...), inverse-CDF sampling (torch.searchsorted) of uniforms from torch's
generator, and a per-seed divergence flag as the JAX step keeps. Written as a careful PyTorch
user would: torch.no_grad, in-place updates, preallocated buffers, batched matmuls,
torch.set_num_threads (1 and 2 are both timed: on a loaded 2-core machine 2 threads can be
much slower than 1). The tasks are scbjax's (``make_task`` of the bench's seeds).

Timing: the JAX calls (``bits="jax"`` and ``bits="paired"``) and the torch trainer are timed
round-robin, best of ``--repeats`` each, ``--steps`` steps per call, at ``--seeds`` seeds; one
JSON line per result on stdout (``--json``) or a table.

    python benchmarks/torch_baseline.py --seeds 256 --steps 500 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np
import torch

from scbjax.app import bench
from scbjax.core.task import make_task
from scbjax.sim.train import seed_keys


def torch_tasks(b: bench.BenchConfig, S: int):
    """(cdf of mu [S, N], cdfs of q(k) by row [S, N, T], cdfs of P[:, j] by row [S, N, N],
    mu [S, N]) of the bench's tasks, as torch float32 tensors."""
    cfg = bench.train_config(b).task
    ks = jax.vmap(lambda k: jax.random.split(k, 3)[0])(seed_keys(range(S)))
    tasks = jax.jit(jax.vmap(lambda k: make_task(k, cfg)))(ks)
    P, mu, q = (torch.from_numpy(np.array(x, np.float32)) for x in (tasks.P, tasks.mu,
                                                                       tasks.q))

    def cdf(p, dim=-1):
        c = torch.cumsum(p, dim)
        return c / c.narrow(dim, c.shape[dim] - 1, 1)

    return cdf(mu), cdf(q.transpose(1, 2)), cdf(P.transpose(1, 2)), mu


class Trainer:
    """The S runs as tensors; ``run(steps)`` advances all of them."""

    def __init__(self, b: bench.BenchConfig, S: int, seed: int = 0):
        self.N, self.T, self.B, self.S = b.N, b.T, b.batch, S
        self.lr, self.lam = 0.01, 1e-3
        self.cmu, self.cq, self.cP, mu = torch_tasks(b, S)
        self.inv_mu = (1.0 / mu)[:, None, :]  # S x 1 x N: columns scaled by 1/mu_k
        N, T, B = self.N, self.T, self.B
        self.V = torch.full((S, N, N), 1.0 / N)
        self.A = torch.full((S, T, N), 1.0 / T)
        self.diverged = torch.full((S,), -1, dtype=torch.int64)
        self.gen = torch.Generator().manual_seed(seed)
        self.u = torch.empty(S, B, T + 3)
        self.h = torch.empty(S, B, N)
        self.GA = torch.empty(S, T, N)
        self.eye = torch.eye(N)
        self.step_no = 0

    @torch.no_grad()
    def step(self) -> torch.Tensor:
        S, N, T, B = self.S, self.N, self.T, self.B
        torch.rand(self.u.shape, generator=self.gen, out=self.u)
        u = self.u
        x = torch.searchsorted(self.cmu, u[:, :, : T + 1].reshape(S, -1), right=True)
        x = x.clamp_(max=N - 1).view(S, B, T + 1)
        tokens, query = x[:, :, :T], x[:, :, T]  # S x B x T, S x B
        cq = torch.gather(self.cq, 1, query[:, :, None].expand(S, B, T))  # S x B x T
        pos = torch.searchsorted(cq, u[:, :, T + 1:T + 2].contiguous(), right=True)
        pos = pos.clamp_(max=T - 1)
        xs = torch.gather(tokens, 2, pos)  # S x B x 1
        cP = torch.gather(self.cP, 1, xs.expand(S, B, N))
        target = torch.searchsorted(cP, u[:, :, T + 2:T + 3].contiguous(), right=True)
        target = target.clamp_(max=N - 1)[:, :, 0]
        # closed-form gradient of the batch MSE
        a = torch.gather(self.A.transpose(1, 2), 1, query[:, :, None].expand(S, B, T))
        h = self.h.zero_().scatter_add_(2, tokens, a)  # h_b = sum_t A[t, k_b] e_{x_bt}
        r = torch.bmm(h, self.V.transpose(1, 2))  # f_b = V h_b
        r -= self.eye[target]
        loss = 0.5 * (r * r).sum((1, 2)) / B
        r /= B
        GV = torch.bmm(r.transpose(1, 2), h)  # sum_b w r_b h_b^T
        gx = torch.gather(torch.bmm(r, self.V), 2, tokens)  # (w V^T r_b)[x_bt]
        GA = self.GA.zero_().scatter_add_(2, query[:, None, :].expand(S, T, B),
                                          gx.transpose(1, 2))
        # ppd: precondition, step, soft prox on A, affine projections of the columns
        GV *= self.inv_mu
        GA *= self.inv_mu
        self.V.add_(GV, alpha=-self.lr)
        self.A.add_(GA, alpha=-self.lr)
        t = self.lr * self.lam
        self.A.copy_(torch.sign(self.A) * (self.A.abs() - t).clamp_(min=0.0))
        self.V -= (self.V.sum(1, keepdim=True) - 1.0) / N
        self.A -= (self.A.sum(1, keepdim=True) - 1.0) / T
        ok = torch.isfinite(self.V.sum((1, 2)) + self.A.sum((1, 2)))
        self.diverged = torch.where((self.diverged < 0) & ~ok, self.step_no + 1, self.diverged)
        self.step_no += 1
        return loss

    def run(self, steps: int) -> torch.Tensor:
        total = torch.zeros(self.S)
        for _ in range(steps):
            total += self.step()
        return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=256)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2",
                    help="torch thread counts, each timed (torch.set_num_threads before a call)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    threads = [int(x) for x in a.threads.split(",")]
    S = a.seeds
    calls = {}
    for bits in ("jax", "paired"):
        b = bench.BenchConfig(steps=a.steps, bits=bits, repeats=a.repeats)
        calls[f"scbjax bits={bits}"] = bench.vmapped_call(b, S)[0]
    tr = Trainer(bench.BenchConfig(steps=a.steps), S)
    tr.run(5)  # warm-up

    def torch_call(n):
        def call():
            torch.set_num_threads(n)
            return tr.run(a.steps)
        return call

    for n in threads:
        calls[f"torch {n} thread(s)"] = torch_call(n)
    load0 = os.getloadavg()
    best = {k: float("inf") for k in calls}
    for _ in range(a.repeats):
        for k, f in calls.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            best[k] = min(best[k], time.perf_counter() - t0)
    work = S * a.steps * 8
    rates = {k: work / t for k, t in best.items()}
    fastest = max(rates[f"torch {n} thread(s)"] for n in threads)
    info = {"seeds": S, "steps": a.steps, "repeats": a.repeats, "threads": threads,
            "torch": torch.__version__, "jax": jax.__version__,
            "load_before": load0, "load_after": os.getloadavg(), "cpu": bench.cpu_model(),
            "diverged_runs": int((tr.diverged >= 0).sum())}
    if a.json:
        print(json.dumps({"samples_per_s": rates, **info}))
        return
    print(f"N=16 T=64 Q=2 B=8 ppd, {S} seeds, {a.steps} steps per call, best of {a.repeats}, "
          f"interleaved; load {load0[0]:.2f} -> {info['load_after'][0]:.2f}; torch "
          f"{torch.__version__}, jax {jax.__version__}")
    for k, r in rates.items():
        print(f"{k:<22} {r:>12.4g} sample-steps/s  {r / fastest:>6.2f}x the fastest torch")


if __name__ == "__main__":
    main()
