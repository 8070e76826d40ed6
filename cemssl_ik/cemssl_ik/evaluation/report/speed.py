"""Section ``speed``: distinct precise solutions per second of our solver at several batch sizes,
next to the closed form, TRAC-IK and pytorch-kinematics on the same UR3 targets."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ...kinematics import load_robot
from ...learning.targets import sample_targets
from ...models import load_checkpoint
from .base import Context, SectionResult, errors, md_table
from .ur3_pose import POSE_MODEL
from .ur3_position import POSITION_MODEL

__all__ = ["SpeedResult", "run", "template_values"]

PEER_NAMES = ("analytic", "trac_ik", "pytorch_kinematics")
NOTE = "solutions = distinct, in-limit answers within 1e-3 mm and 1e-3 deg (peers: their precise answers)"


@dataclass
class SpeedResult(SectionResult):
    """``rows``: {"solver", "batch", "solutions_per_second", and for our pose rows "ratio_vs_<peer>"}."""

    rows: list[dict]
    note: str = NOTE


def _rate(fn: Callable[[], tuple[int, float]], min_seconds: float) -> float:
    """Solutions per second: ``fn`` returns (solutions found, seconds the solver took); repeated
    until at least ``min_seconds`` of solver time are accumulated (answer checking not counted)."""
    fn()  # warm
    n, t = 0, 0.0
    while t < min_seconds:
        k, dt = fn()
        n, t = n + k, t + dt
    return n / t


def _peer_rates(ctx: Context, chain, P: torch.Tensor, R: torch.Tensor) -> dict[str, dict[int, float]]:
    from ..peers import PEERS

    batches = ctx.scale.speed_batches
    rates: dict[str, dict[int, float]] = {}
    for name in PEER_NAMES:
        rates[name] = {}
        for b in batches:
            if name != "pytorch_kinematics" and b != batches[0]:
                rates[name][b] = rates[name][batches[0]]  # one pose per call: batch size does not apply
                continue
            nb = b if name == "pytorch_kinematics" else min(len(P), 256)  # per-call peers: a run of poses

            def once(fn=PEERS[name], nb=nb) -> tuple[int, float]:
                r = fn(P[:nb], R[:nb])
                pe, oe = errors(chain, r.solutions, P[:nb], R[:nb])
                return int((r.valid & (pe <= 1e-6) & (oe <= math.radians(1e-3))).sum()), r.seconds

            try:
                rates[name][b] = _rate(once, ctx.scale.speed_seconds)
            except ImportError:
                rates[name][b] = math.nan
    return rates


def run(ctx: Context) -> SpeedResult:
    from ...solver import IKSolver, SolverOptions

    s = ctx.scale
    chain = load_robot("ur3")
    targets = sample_targets(chain, max(s.speed_batches), torch.Generator().manual_seed(ctx.seed + 77))
    P, R = targets.position, targets.rotation
    peer_rates = _peer_rates(ctx, chain, P, R)
    rows = []
    for label, name, K, rot in (("cemssl_ik pose (K=8, refined)", POSE_MODEL, 8, True), ("cemssl_ik position-only (K=32, refined)", POSITION_MODEL, 32, False)):
        solver = IKSolver(load_checkpoint(name, chain)[0], chain)
        solver.warmup()
        for b in s.speed_batches:

            def once(solver=solver, b=b, K=K, rot=rot) -> tuple[int, float]:
                t0 = time.perf_counter()
                r = solver.solve(P[:b], R[:b] if rot else None, options=SolverOptions(num_solutions=K))
                return int(r.valid.sum()), time.perf_counter() - t0

            row = {"solver": label, "batch": b, "solutions_per_second": _rate(once, s.speed_seconds)}
            if rot:
                row.update({f"ratio_vs_{peer}": row["solutions_per_second"] / r[b] if r.get(b) else math.nan for peer, r in peer_rates.items()})
            rows.append(row)
            ctx.log(f"  {label} batch {b}: {row['solutions_per_second']:,.0f} solutions/s")
    rows += [{"solver": name, "batch": b, "solutions_per_second": v} for name, rates in peer_rates.items() for b, v in rates.items()]
    return SpeedResult(rows)


def template_values(r: SpeedResult) -> dict[str, str]:
    """The ``speed`` block's placeholders; ``best`` is empty when none of our rows ran."""
    table = md_table(
        ["solver", "batch", "solutions/s", "x analytic", "x TRAC-IK", "x pytorch-kinematics"],
        [[x["solver"], x["batch"], x["solutions_per_second"], x.get("ratio_vs_analytic"), x.get("ratio_vs_trac_ik"), x.get("ratio_vs_pytorch_kinematics")] for x in r.rows],
    )
    best: dict[str, float] = {}
    for x in r.rows:
        if x["solver"].startswith("cemssl_ik"):
            kind = "position-only" if "position" in x["solver"] else "full-pose"
            best[kind] = max(best.get(kind, 0.0), x["solutions_per_second"])
    return {"note": r.note, "table": table, "best": "; ".join(f"{kind} targets {rate:,.0f} solutions/s" for kind, rate in best.items())}
