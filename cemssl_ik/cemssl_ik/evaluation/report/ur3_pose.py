"""Section ``ur3_pose``: the shipped pose model, raw and refined by :class:`IKSolver`, next to
ur-analytic-ik, TRAC-IK, pytorch-kinematics and ikpy on identical full-pose targets."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ...kinematics import load_robot
from ...kinematics.chain import KinematicChain
from ...learning.targets import EVAL_SEED_OFFSET, sample_targets
from ...models import load_checkpoint
from ..evaluate import evaluate_model
from ..metrics import analytic_coverage
from ..plots import plot_arm_overlays
from ..precision import summarize
from .base import Context, SectionResult, errors, md_table

__all__ = ["OURS", "POSE_MODEL", "UR3PoseResult", "run", "score", "template_values"]

#: the shipped full-pose model
POSE_MODEL = "ur3_regression_pose"
#: our solver's row label
OURS = "cemssl_ik (K=32, refined)"


@dataclass
class UR3PoseResult(SectionResult):
    """``solvers``: name -> :func:`score` dict, or ``{"absent": why}`` for a peer not installed;
    ``raw_model``: the pose model alone (:meth:`~..evaluate.ModelEvaluation.to_dict`'s precision
    and diversity fields)."""

    targets: int
    raw_model: dict
    solvers: dict[str, dict]
    figures: dict[str, str] = field(default_factory=dict)
    model: str = POSE_MODEL


def score(chain: KinematicChain, sol: torch.Tensor, valid: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor, seconds: float, latency_ms: list[float] | None) -> dict:
    """Precise answers (1e-3 mm, 1e-3 deg by our FK), analytic coverage and rates of one solver's answers."""
    pe, oe = errors(chain, sol, position, rotation)
    precise = valid & (pe <= 1e-6) & (oe <= math.radians(1e-3))
    loose = valid & (pe <= 1e-3) & (oe <= math.radians(1.0))
    cov, _ = analytic_coverage(sol, precise, position, rotation)
    n = len(position)
    out = {
        "targets": n,
        "returned_per_target": float(valid.sum(1).double().mean()),
        "precise_per_target": float(precise.sum(1).double().mean()),
        "precise_fraction_of_returned": float(precise.sum()) / max(1, int(valid.sum())),
        "success_precise": float(precise.any(1).double().mean()),
        "success_1mm_1deg": float(loose.any(1).double().mean()),
        "position_error_mm": summarize(pe[valid] * 1e3) if valid.any() else None,
        "orientation_error_deg": summarize(torch.rad2deg(oe[valid])) if valid.any() else None,
        "analytic_coverage": float(cov.mean()),
        "seconds": seconds,
        "precise_solutions_per_second": float(precise.sum()) / seconds if seconds > 0 else math.nan,
        "ms_per_target": seconds / n * 1e3,
    }
    if latency_ms:
        out["latency_p50_ms"] = float(np.percentile(latency_ms, 50))
        out["latency_p99_ms"] = float(np.percentile(latency_ms, 99))
    return out


def _ours(chain: KinematicChain, solver, P: torch.Tensor, R: torch.Tensor) -> dict:
    from ...solver import SolverOptions

    sols, oks = [], []
    t0 = time.perf_counter()
    for b in range(0, len(P), 100):
        r = solver.solve(P[b : b + 100], R[b : b + 100], options=SolverOptions(num_solutions=32))
        sols.append(r.solutions)
        oks.append(r.valid)
    wall = time.perf_counter() - t0
    lat = []
    for i in range(min(50, len(P))):
        t = time.perf_counter()
        solver.solve(P[i : i + 1], R[i : i + 1], options=SolverOptions(num_solutions=16))
        lat.append((time.perf_counter() - t) * 1e3)
    return score(chain, torch.cat(sols), torch.cat(oks), P, R, wall, lat)


def _peers(ctx: Context, chain: KinematicChain, P: torch.Tensor, R: torch.Tensor) -> dict[str, dict]:
    from ..peers import PEERS, in_real_limits

    out: dict[str, dict] = {}
    for name, run_peer in PEERS.items():
        n = ctx.scale.ikpy_targets if name == "ikpy" else len(P)
        try:
            res = run_peer(P[:n], R[:n])
        except ImportError as exc:
            out[name] = {"absent": str(exc)}
            continue
        sol, valid = in_real_limits(chain, res.solutions, res.valid)
        out[name] = score(chain, sol, valid, P[:n], R[:n], res.seconds, res.latency_ms)
        ctx.log(f"  {name}: {out[name]['precise_per_target']:.2f} precise solutions per target, {out[name]['ms_per_target']:.3f} ms per target")
    return out


def run(ctx: Context) -> UR3PoseResult:
    from ...solver import IKSolver, SolverOptions

    chain = load_robot("ur3")
    targets = sample_targets(chain, ctx.scale.pose_targets, torch.Generator().manual_seed(ctx.seed + EVAL_SEED_OFFSET + 1))
    P, R = targets.position, targets.rotation
    model, _ = load_checkpoint(POSE_MODEL, chain)
    s = ctx.scale
    raw = evaluate_model(model, chain, targets=targets, seed=ctx.seed, diversity_targets=s.diversity_targets, diversity_samples=s.diversity_samples)
    raw_dict = {k: v for k, v in raw.to_dict().items() if k in ("position_error_mm", "orientation_error_deg", "in_limits_fraction", "class_coverage", "mmd", "diversity")}
    solver = IKSolver(model, chain, seed=ctx.seed)
    solver.warmup()
    out = UR3PoseResult(ctx.scale.pose_targets, raw_dict, {OURS: _ours(chain, solver, P, R)})
    ctx.log(f"  ours: {out.solvers[OURS]['precise_per_target']:.2f} precise solutions per target")
    out.solvers.update(_peers(ctx, chain, P, R))
    # overlay: one pose target, its refined solutions coloured by configuration class
    r = solver.solve(P[:1], R[:1], options=SolverOptions(num_solutions=8))
    q = r.solutions[0][r.valid[0]]
    if len(q):
        labels = [f"class {int(b)}" for b in r.branch[0][r.valid[0]]]
        plot_arm_overlays(chain, q, P[0].tolist(), ctx.figure("ur3_pose_overlays.png"), labels=labels, title=f"{POSE_MODEL} + refinement: {len(q)} distinct solutions of one pose")
        out.figures["overlays"] = "results/ur3_pose_overlays.png"
    return out


def template_values(r: UR3PoseResult) -> dict[str, str]:
    """The ``ur3_pose`` block's placeholders; ``compare_*`` only where ours and pytorch-kinematics ran."""
    rows = []
    for name, x in r.solvers.items():
        if "absent" in x:
            rows.append([name] + [None] * 8)
            continue
        rows.append([name, x["targets"], x["returned_per_target"], x["precise_per_target"], x["success_precise"] * 100, x["analytic_coverage"] * 100, x["precise_solutions_per_second"], x["ms_per_target"], x.get("latency_p50_ms")])
    out = {
        "targets": str(r.targets),
        "ikpy_targets": str(r.solvers.get("ikpy", {}).get("targets", "-")),
        "model": r.model,
        "raw_mm": f"{r.raw_model['position_error_mm']['mean']:.1f}",
        "raw_deg": f"{r.raw_model['orientation_error_deg']['mean']:.1f}",
        "table": md_table(["solver", "targets", "returned / target", "precise / target", "solved %", "coverage %", "precise solutions/s", "ms / target", "p50 ms / call"], rows),
        "figure_overlays": r.figures.get("overlays", ""),
    }
    d = r.raw_model.get("diversity") or {}
    if r.raw_model.get("class_coverage") is not None and "samples_per_target" in d:
        out.update(
            raw_coverage=f"{r.raw_model['class_coverage']:.2f}", raw_mmd=f"{r.raw_model['mmd']:.3g}",
            raw_samples=str(d["samples_per_target"]), raw_targets=str(d["targets"]), raw_near_mm=f"{d['near_m'] * 1e3:.0f}", raw_near_deg=f"{math.degrees(d['near_rad']):.1f}",
        )
    ours = next((v for k, v in r.solvers.items() if k.startswith("cemssl_ik")), None)
    pk = r.solvers.get("pytorch_kinematics", {})
    if ours and pk and "absent" not in pk:
        out.update(
            compare_precise_pct=f"{ours['precise_fraction_of_returned'] * 100:.2f}",
            compare_coverage_pct=f"{ours['analytic_coverage'] * 100:.1f}",
            compare_rate=f"{ours['precise_solutions_per_second']:,.0f}",
            compare_pk_coverage_pct=f"{pk['analytic_coverage'] * 100:.1f}",
            compare_pk_rate=f"{pk['precise_solutions_per_second']:,.0f}",
        )
    return out
