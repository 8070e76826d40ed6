"""In-process solver benchmark on UR3 full-pose targets: ours vs the closed form and TRAC-IK, same targets.

Reports, for N random reachable poses (FK of uniform joints):
- ours (IKSolver, refined): fraction of returned solutions within 1e-3 mm and 1e-3 deg (checked
  with independent FK), coverage of each target's analytic solution set, distinct in-limit
  solutions per second when solving the targets in batches, and single-request latency;
- the closed form (ur-analytic-ik, all solutions per pose) and TRAC-IK (pytracik, one solution
  per call from a random seed, 5 ms timeout), timed in the same process on the same targets.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..kinematics import find_package_file, load_robot, rotation_angle
from ..models.generators import IKGenerator
from ..solver import IKSolver, SolverOptions
from .metrics import analytic_coverage

__all__ = ["run_solver_benchmark"]


def run_solver_benchmark(model: IKGenerator, num_targets: int = 1000, k: int = 32, batch: int = 32, latency_requests: int = 100, seed: int = 0) -> dict:
    chain = load_robot("ur3")
    gen = torch.Generator().manual_seed(seed + 99)
    q = chain.sample_configurations(num_targets, gen)
    fk = chain.forward(q)
    solver = IKSolver(model, chain)
    out: dict = {"num_targets": num_targets, "k": k}

    # ours, batched
    sols, valid = [], []
    t0 = time.perf_counter()
    for s in range(0, num_targets, batch):
        res = solver.solve(fk.position[s : s + batch], fk.rotation[s : s + batch], options=SolverOptions(num_solutions=k))
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
    # ours, one request at a time (what a service call costs without transport)
    for kk in (1, 16):
        lat = []
        for i in range(min(latency_requests, num_targets)):
            t = time.perf_counter()
            solver.solve(fk.position[i : i + 1], fk.rotation[i : i + 1], options=SolverOptions(num_solutions=kk))
            lat.append((time.perf_counter() - t) * 1e3)
        out["ours"][f"latency_k{kk}_p50_ms"] = float(np.percentile(lat, 50))
        out["ours"][f"latency_k{kk}_p99_ms"] = float(np.percentile(lat, 99))

    # closed form
    try:
        import ur_analytic_ik

        # ur-analytic-ik works in the DH base frame (`base` = base_link rotated by pi about z)
        flip = np.diag([-1.0, -1.0, 1.0])
        T = np.zeros((num_targets, 4, 4))
        T[:, :3, :3] = flip @ fk.rotation.numpy()
        T[:, :3, 3] = fk.position.numpy() @ flip.T
        T[:, 3, 3] = 1
        t0 = time.perf_counter()
        counts = [len(ur_analytic_ik.ur3.inverse_kinematics(np.ascontiguousarray(t))) for t in T]
        wall = time.perf_counter() - t0
        out["analytic"] = {"solutions_per_target": float(np.mean(counts)), "us_per_pose": wall / num_targets * 1e6, "solutions_per_second": sum(counts) / wall}
    except ImportError:
        out["analytic"] = None

    # TRAC-IK
    try:
        from trac_ik import TracIK

        tik = TracIK("base_link", "tool0", str(find_package_file("urdf/ur3.urdf")), timeout=0.005, epsilon=1e-5)
        rng = np.random.default_rng(seed)
        lo, hi = tik.joint_limits
        found, lat, precise_t = 0, [], 0
        for i in range(num_targets):
            seed_q = rng.uniform(np.maximum(lo, -math.pi), np.minimum(hi, math.pi))
            t = time.perf_counter()
            r = tik.ik(fk.position[i].numpy(), fk.rotation[i].numpy(), seed_q)
            lat.append((time.perf_counter() - t) * 1e3)
            if r is not None:
                found += 1
                f = chain.forward(torch.tensor(r, dtype=torch.float64))
                if (f.position - fk.position[i]).norm() <= 1e-6 and rotation_angle(f.rotation, fk.rotation[i]) <= math.radians(1e-3):
                    precise_t += 1
        out["trac_ik"] = {
            "success_fraction": found / num_targets,
            "precise_fraction": precise_t / max(1, found),
            "solutions_per_target": found / num_targets,
            "latency_p50_ms": float(np.percentile(lat, 50)),
            "solutions_per_second": found / (sum(lat) / 1e3),
        }
    except ImportError:
        out["trac_ik"] = None
    return out
