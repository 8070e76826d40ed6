"""Peer IK solvers for the UR3, run in our process on our targets, answers checked with our FK.

Each ``run_*`` takes B full-pose targets in the ``base_link`` frame of ``urdf/ur3.urdf`` and
returns a :class:`PeerRun` with a fixed-shape (B, K, 6) solution tensor (NaN where a peer returned
nothing), the wall time of the whole batch and, where the peer solves one target per call, the
per-call latencies.  The peers and how they are called:

- ``analytic``: ur-analytic-ik (closed form, C++), all solutions of each pose, one call per pose;
- ``trac_ik``: TRAC-IK through pytracik, one solution per call from a random seed, 5 ms timeout,
  tolerance 1e-7 (asked for the precision the others are scored at);
- ``pytorch_kinematics``: batched ``PseudoInverseIK`` (damped least squares) with random restarts;
  converged restarts, deduplicated, are its solutions;
- ``ikpy``: ikpy's scipy-based solver, one solution per call from a random initial configuration.

A peer whose package is missing raises ImportError; callers report it as absent.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..kinematics.limits import nearest_periodic_copy
from ..resources import find_package_file

__all__ = ["PeerRun", "run_analytic", "run_trac_ik", "run_pytorch_kinematics", "run_ikpy", "PEERS"]


@dataclass
class PeerRun:
    """Answers of one peer for B targets.

    Attributes:
        name: peer name.
        solutions: (B, K, 6) float64 joint values; NaN rows where nothing was returned.
        valid: (B, K) the peer reported these as solutions.
        seconds: wall time for all B targets (including per-call Python overhead).
        latency_ms: per-call latencies for peers called once per target, else None.
    """

    name: str
    solutions: torch.Tensor
    valid: torch.Tensor
    seconds: float
    latency_ms: list[float] | None = None


def _pack(rows: list[np.ndarray], k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    k = k or max([len(r) for r in rows] + [1])
    sol = torch.full((len(rows), k, 6), math.nan, dtype=torch.float64)
    for i, r in enumerate(rows):
        if len(r):
            sol[i, : len(r)] = torch.as_tensor(np.asarray(r, dtype=np.float64)[:k])
    return sol, torch.isfinite(sol).all(-1)


def run_analytic(position: torch.Tensor, rotation: torch.Tensor) -> PeerRun:
    import ur_analytic_ik

    # ur-analytic-ik works in the DH base frame (`base` = base_link rotated by pi about z)
    flip = np.diag([-1.0, -1.0, 1.0])
    T = np.zeros((len(position), 4, 4))
    T[:, :3, :3] = flip @ rotation.numpy()
    T[:, :3, 3] = position.numpy() @ flip.T
    T[:, 3, 3] = 1
    rows, lat = [], []
    t0 = time.perf_counter()
    for t in T:
        s = time.perf_counter()
        rows.append(np.asarray(ur_analytic_ik.ur3.inverse_kinematics(np.ascontiguousarray(t))).reshape(-1, 6))
        lat.append((time.perf_counter() - s) * 1e3)
    wall = time.perf_counter() - t0
    sol, valid = _pack(rows, 8)
    return PeerRun("analytic", sol, valid, wall, lat)


def run_trac_ik(position: torch.Tensor, rotation: torch.Tensor, timeout: float = 0.005, epsilon: float = 1e-7, seed: int = 0) -> PeerRun:
    from trac_ik import TracIK

    tik = TracIK("base_link", "tool0", str(find_package_file("urdf/ur3.urdf")), timeout=timeout, epsilon=epsilon)
    rng = np.random.default_rng(seed)
    lo, hi = tik.joint_limits
    rows, lat = [], []
    t0 = time.perf_counter()
    for i in range(len(position)):
        seed_q = rng.uniform(np.maximum(lo, -math.pi), np.minimum(hi, math.pi))
        s = time.perf_counter()
        r = tik.ik(position[i].numpy(), rotation[i].numpy(), seed_q)
        lat.append((time.perf_counter() - s) * 1e3)
        rows.append(np.zeros((0, 6)) if r is None else np.asarray(r).reshape(1, 6))
    wall = time.perf_counter() - t0
    sol, valid = _pack(rows, 1)
    return PeerRun("trac_ik", sol, valid, wall, lat)


def run_pytorch_kinematics(
    position: torch.Tensor,
    rotation: torch.Tensor,
    retries: int = 32,
    iterations: int = 50,
    batch: int = 256,
    distinct_tolerance: float = 1e-2,
    seed: int = 0,
) -> PeerRun:
    """Batched PseudoInverseIK; ``batch`` targets per call; converged retries deduplicated."""
    import pytorch_kinematics as pk

    torch.manual_seed(seed)  # its restarts are drawn from the global RNG
    chain = pk.build_serial_chain_from_urdf(find_package_file("urdf/ur3.urdf").read_text(), "tool0", "base_link").to(dtype=torch.float64)
    limits = torch.tensor(chain.get_joint_limits(), dtype=torch.float64).T
    ik = pk.PseudoInverseIK(
        chain,
        max_iterations=iterations,
        num_retries=retries,
        joint_limits=limits,
        early_stopping_any_converged=False,
        early_stopping_no_improvement=None,
        pos_tolerance=1e-6,
        rot_tolerance=1e-5,
        lr=0.5,
    )
    out_sol, out_ok = [], []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in range(0, len(position), batch):
            tf = pk.Transform3d(pos=position[s : s + batch], rot=rotation[s : s + batch], dtype=torch.float64)
            res = ik.solve(tf)
            out_sol.append(res.solutions.detach().double())
            out_ok.append(res.converged.clone())
    wall = time.perf_counter() - t0
    sol, ok = torch.cat(out_sol), torch.cat(out_ok)
    # distinct converged restarts (max joint difference modulo 2*pi above the tolerance)
    sol = torch.where(ok[..., None], sol, torch.full_like(sol, math.nan))
    wrapped = torch.remainder(torch.nan_to_num(sol) + math.pi, 2 * math.pi) - math.pi
    keep = ok.clone()
    for k in range(1, sol.shape[1]):
        d = (wrapped[:, :k] - wrapped[:, k : k + 1]).abs()
        d = torch.minimum(d, 2 * math.pi - d).amax(-1)
        keep[:, k] &= ~((d <= distinct_tolerance) & keep[:, :k]).any(-1)
    sol = torch.where(keep[..., None], sol, torch.full_like(sol, math.nan))
    return PeerRun("pytorch_kinematics", sol, keep, wall, None)


def run_ikpy(position: torch.Tensor, rotation: torch.Tensor, seed: int = 0) -> PeerRun:
    from ikpy.chain import Chain

    path = str(find_package_file("urdf/ur3.urdf"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = Chain.from_urdf_file(path, base_elements=["base_link"])
        mask = [i > 0 and link.joint_type != "fixed" for i, link in enumerate(probe.links)]
        chain = Chain.from_urdf_file(path, base_elements=["base_link"], active_links_mask=mask)
    active = np.array(mask)
    rng = np.random.default_rng(seed)
    rows, lat = [], []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(len(position)):
            init = np.zeros(len(chain.links))
            init[active] = rng.uniform(-math.pi, math.pi, int(active.sum()))
            s = time.perf_counter()
            r = chain.inverse_kinematics(position[i].numpy(), rotation[i].numpy(), orientation_mode="all", initial_position=init)
            lat.append((time.perf_counter() - s) * 1e3)
            rows.append(np.asarray(r)[active].reshape(1, 6))
    wall = time.perf_counter() - t0
    sol, valid = _pack(rows, 1)
    return PeerRun("ikpy", sol, valid, wall, lat)


def in_real_limits(chain, sol: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Map peer answers to the 2*pi copy nearest zero within the chain's real limits."""
    B, K, dof = sol.shape
    flat, within = nearest_periodic_copy(torch.nan_to_num(sol).reshape(-1, dof), torch.zeros(B * K, dof, dtype=torch.float64), chain.lower, chain.upper, chain.periodic)
    return torch.where(valid[..., None], flat.reshape(B, K, dof), sol), valid & within.reshape(B, K)


PEERS = {"analytic": run_analytic, "trac_ik": run_trac_ik, "pytorch_kinematics": run_pytorch_kinematics, "ikpy": run_ikpy}
