"""Section ``hard_targets``: the shipped pose model, ur-analytic-ik and TRAC-IK on near-singular
UR3 targets (:mod:`..hard_targets`), K = 32."""

from __future__ import annotations

from dataclasses import dataclass

from ...kinematics import load_robot
from ...models import load_checkpoint
from .base import Context, SectionResult
from .ur3_pose import POSE_MODEL

__all__ = ["HardTargetsResult", "run", "template_values"]


@dataclass
class HardTargetsResult(SectionResult):
    """``sets``: :func:`~..bench_solver.run_hard_target_benchmark`'s result."""

    targets_per_set: int
    k: int
    sets: dict[str, dict]


def run(ctx: Context) -> HardTargetsResult:
    from ..bench_solver import run_hard_target_benchmark

    model, _ = load_checkpoint(POSE_MODEL, load_robot("ur3"))
    return HardTargetsResult(ctx.scale.hard_targets, 32, run_hard_target_benchmark(model, ctx.scale.hard_targets, 32, seed=ctx.seed))


def template_values(r: HardTargetsResult) -> dict[str, str]:
    from ..bench_solver import format_hard_target_table

    return {"targets_per_set": str(r.targets_per_set), "table": format_hard_target_table(r.sets, r.k)}
