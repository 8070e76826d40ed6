"""In-process solver benchmark on UR3 full-pose targets: ours vs the closed form and TRAC-IK, same targets.

Reports, for N random reachable poses (FK of uniform joints):
- ours (IKSolver, refined): fraction of returned solutions within 1e-3 mm and 1e-3 deg (checked
  with independent FK), coverage of each target's analytic solution set, distinct in-limit
  solutions per second when solving the targets in batches, and single-request latency;
- the closed form (ur-analytic-ik, all solutions per pose) and TRAC-IK (pytracik, one solution
  per call from a random seed, 5 ms timeout, tolerance 1e-7), timed in the same process on the same
  targets through :mod:`.peers`.

:func:`run_hard_target_benchmark` scores the same three on the near-singular sets of
:mod:`.hard_targets` (wrist, shoulder, elbow at its limit, stretched arm, and random for reference).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..kinematics import load_robot, rotation_angle
from ..models.generators import IKGenerator
from ..solver import IKSolver, SolverOptions
from .hard_targets import HARD_SETS, hard_target_set
from .metrics import analytic_coverage

__all__ = ["run_solver_benchmark", "run_hard_target_benchmark", "format_hard_target_table"]

#: a returned solution is precise within 1e-3 mm and 1e-3 degrees (independent FK)
PRECISE_POSITION_M = 1e-6
PRECISE_ORIENTATION_RAD = math.radians(1e-3)


def run_solver_benchmark(model: IKGenerator, num_targets: int = 1000, k: int = 32, batch: int = 32, latency_requests: int = 100, seed: int = 0, random_fraction: float | None = None, oversample: int | None = None, backend: str = "auto") -> dict:
    chain = load_robot("ur3")
    gen = torch.Generator().manual_seed(seed + 99)
    q = chain.sample_configurations(num_targets, gen)
    fk = chain.forward(q)
    solver = IKSolver(model, chain, backend=backend)
    extra = {} if random_fraction is None else {"random_fraction": random_fraction}
    if oversample is not None:
        extra["oversample"] = oversample
    base = SolverOptions(**extra)
    out: dict = {"num_targets": num_targets, "k": k, "backend": solver.backend, "random_fraction": base.random_fraction, "oversample": base.oversample, "warmup_seconds": solver.warmup()}

    # ours, batched
    sols, valid = [], []
    t0 = time.perf_counter()
    for s in range(0, num_targets, batch):
        res = solver.solve(fk.position[s : s + batch], fk.rotation[s : s + batch], options=SolverOptions(num_solutions=k, **extra))
        sols.append(res.solutions)
        valid.append(res.valid)
    wall = time.perf_counter() - t0
    sol, ok = torch.cat(sols), torch.cat(valid)
    check = chain.forward(torch.nan_to_num(sol))
    pe = (check.position - fk.position[:, None]).norm(dim=-1)
    oe = rotation_angle(check.rotation, fk.rotation[:, None].expand_as(check.rotation))
    precise = (pe <= 1e-6) & (oe <= math.radians(1e-3))
    cov, n_analytic = analytic_coverage(sol, ok, fk.position, fk.rotation)
    out["ours"] = {
        "solutions_per_target": float(ok.sum(1).double().mean()),
        "precise_fraction": float(precise[ok].double().mean()) if ok.any() else 0.0,
        "in_limits_fraction": float(chain.within_limits(sol[ok]).double().mean()) if ok.any() else 0.0,
        "analytic_coverage_mean": float(cov.mean()),
        "targets_with_full_coverage": float((cov >= 1.0 - 1e-9).double().mean()),
        "analytic_solutions_per_target": float(n_analytic.double().mean()),
        "solutions_per_second": float(ok.sum()) / wall,
        "seconds": wall,
    }
    # ours, one request at a time (what a service call costs without transport); the calling
    # thread's CPU time as well: on a shared machine it does not count the time others held the core
    for kk in (1, 16):
        lat, cpu = [], []
        for i in range(min(latency_requests, num_targets)):
            t, c = time.perf_counter(), time.thread_time()
            solver.solve(fk.position[i : i + 1], fk.rotation[i : i + 1], options=SolverOptions(num_solutions=kk, **extra))
            lat.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.thread_time() - c) * 1e3)
        out["ours"][f"latency_k{kk}_p50_ms"] = float(np.percentile(lat, 50))
        out["ours"][f"latency_k{kk}_p99_ms"] = float(np.percentile(lat, 99))
        out["ours"][f"latency_k{kk}_cpu_p50_ms"] = float(np.percentile(cpu, 50))

    # peers, timed in this process on the same targets (see evaluation/peers.py)
    from .peers import run_analytic, run_trac_ik

    try:
        an = run_analytic(fk.position, fk.rotation)
        n_an = int(an.valid.sum())
        out["analytic"] = {"solutions_per_target": n_an / num_targets, "us_per_pose": an.seconds / num_targets * 1e6, "solutions_per_second": n_an / an.seconds}
    except ImportError:
        out["analytic"] = None
    try:
        tr = run_trac_ik(fk.position, fk.rotation, seed=seed)
        found = tr.valid[:, 0]
        check = chain.forward(torch.nan_to_num(tr.solutions[:, 0]))
        ok = found & ((check.position - fk.position).norm(dim=-1) <= 1e-6) & (rotation_angle(check.rotation, fk.rotation) <= math.radians(1e-3))
        out["trac_ik"] = {
            "success_fraction": float(found.double().mean()),
            "precise_fraction": float(ok.sum()) / max(1, int(found.sum())),
            "solutions_per_target": float(found.double().mean()),
            "latency_p50_ms": float(np.percentile(tr.latency_ms, 50)),
            "solutions_per_second": float(found.sum()) / (sum(tr.latency_ms) / 1e3),
        }
    except ImportError:
        out["trac_ik"] = None
    return out


def _score(chain, sol: torch.Tensor, ok: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor) -> dict:
    """Coverage of the analytic solution sets and precision of solutions (B, K, 6) with validity (B, K)."""
    check = chain.forward(torch.nan_to_num(sol))
    pe = (check.position - position[:, None]).norm(dim=-1)
    oe = rotation_angle(check.rotation, rotation[:, None].expand_as(check.rotation))
    precise = (pe <= PRECISE_POSITION_M) & (oe <= PRECISE_ORIENTATION_RAD)
    cov, n_analytic = analytic_coverage(sol, ok, position, rotation)
    has = n_analytic > 0  # a target FK made can still be out of the closed form's reach by round-off
    return {
        "solutions_per_target": float(ok.sum(1).double().mean()),
        "precise_fraction": float(precise[ok].double().mean()) if ok.any() else 0.0,
        "analytic_coverage_mean": float(cov[has].mean()) if has.any() else 0.0,
        "targets_with_full_coverage": float((cov[has] >= 1.0 - 1e-9).double().mean()) if has.any() else 0.0,
        "analytic_solutions_per_target": float(n_analytic.double().mean()),
        "targets_without_analytic_solution": int((~has).sum()),
    }


def run_hard_target_benchmark(
    model: IKGenerator, num_targets: int = 100, k: int = 32, batch: int = 32, seed: int = 0, sets: tuple[str, ...] = HARD_SETS, backend: str = "auto", peers: bool = True
) -> dict:
    """Ours, the closed form and TRAC-IK on each near-singular target set, in this process.

    Returns:
        {set name: {"ours": {...}, "analytic": {...} | None, "trac_ik": {...} | None}}: coverage of
        the analytic solution sets (1e-2 rad, modulo 2*pi), precise fraction, solutions and
        milliseconds per target (ours: batches of ``batch`` targets, K = ``k``).
    """
    chain = load_robot("ur3")
    solver = IKSolver(model, chain, backend=backend)
    solver.warmup()
    out: dict = {}
    for i, name in enumerate(sets):
        ts = hard_target_set(chain, name, num_targets, seed=seed + 1000 * i)
        sols, valid = [], []
        t0 = time.perf_counter()
        for s in range(0, num_targets, batch):
            res = solver.solve(ts.position[s : s + batch], ts.rotation[s : s + batch], options=SolverOptions(num_solutions=k))
            sols.append(res.solutions)
            valid.append(res.valid)
        wall = time.perf_counter() - t0
        row = {"ours": dict(_score(chain, torch.cat(sols), torch.cat(valid), ts.position, ts.rotation), ms_per_target=wall / num_targets * 1e3)}
        if peers:
            from .peers import in_real_limits, run_analytic, run_trac_ik

            for peer, run in (("analytic", run_analytic), ("trac_ik", lambda p, r: run_trac_ik(p, r, seed=seed))):
                try:
                    pr = run(ts.position, ts.rotation)
                except ImportError:
                    row[peer] = None
                    continue
                sol, ok = in_real_limits(chain, pr.solutions, pr.valid)
                row[peer] = dict(_score(chain, sol, ok, ts.position, ts.rotation), ms_per_target=pr.seconds / num_targets * 1e3)
        out[name] = row
    return out


def format_hard_target_table(hard: dict, k: int) -> str:
    """Markdown table of :func:`run_hard_target_benchmark`'s result."""
    lines = [
        f"| target set | solver | analytic-set coverage (K = {k} for ours) | targets fully covered | solutions / target | precise (1e-3 mm, 1e-3 deg) | ms / target |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {"ours": "cemssl_ik (refined)", "analytic": "ur-analytic-ik", "trac_ik": "TRAC-IK (pytracik, 5 ms)"}
    for set_name, row in hard.items():
        for key, label in names.items():
            r = row.get(key)
            if r is None:
                continue
            lines.append(
                f"| {set_name} | {label} | {r['analytic_coverage_mean'] * 100:.2f} % | {r['targets_with_full_coverage'] * 100:.1f} % | "
                f"{r['solutions_per_target']:.2f} (analytic {r['analytic_solutions_per_target']:.2f}) | {r['precise_fraction'] * 100:.3f} % | {r['ms_per_target']:.3f} |"
            )
    return "\n".join(lines)
