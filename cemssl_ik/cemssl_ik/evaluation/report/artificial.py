"""Section ``artificial``: Stephan et al.'s alternating x/z chain, 4 to 20 DoF.

Supervised regression vs unsupervised FK-loss training vs CEMSSL, position-only and full pose,
each trained here for the same wall time and scored on uniform held-out targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...kinematics import artificial_chain
from ...learning.targets import EVAL_SEED_OFFSET, sample_targets
from ..precision import evaluate_precision, summarize
from .base import Context, SectionResult, md_table
from .papers import STEPHAN_TABLE_II_MM, stephan_uniform_range
from .training import train

__all__ = ["ArtificialResult", "ArtificialRow", "run", "template_values"]

METHODS = ("regression", "unsupervised", "cemssl")


@dataclass
class ArtificialRow(SectionResult):
    dof: int
    target: str
    method: str
    position_error_mm: dict[str, float]
    train_seconds: float
    orientation_error_deg: dict[str, float] | None = None


@dataclass
class ArtificialResult(SectionResult):
    rows: list[ArtificialRow]
    train_seconds_each: float


def run(ctx: Context) -> ArtificialResult:
    s = ctx.scale
    rows = []
    for dof in s.artificial_dofs:
        chain = artificial_chain(dof)
        test = sample_targets(chain, s.trained_eval_targets, torch.Generator().manual_seed(ctx.seed + EVAL_SEED_OFFSET))
        for target in ("position", "pose"):
            for method in METHODS:
                model, info = train(ctx, chain, method, target, s.artificial_train_seconds, seed=ctx.seed)
                rep = evaluate_precision(model, chain, targets=test, seed=ctx.seed)
                deg = summarize(torch.rad2deg(rep.orientation_error.flatten())) if rep.orientation_error is not None else None
                rows.append(ArtificialRow(dof, target, method, summarize(rep.position_error.flatten() * 1e3), info["seconds"], deg))
                ctx.log(f"  artificial {dof} {target} {method}: mean {rows[-1].position_error_mm['mean']:.1f} mm")
    return ArtificialResult(rows, s.artificial_train_seconds)


def template_values(r: ArtificialResult) -> dict[str, str]:
    """The ``artificial`` block's placeholders (Stephan et al.'s figures from :mod:`.papers`)."""
    rows = [[x.dof, x.target, x.method, x.position_error_mm["mean"], x.position_error_mm["median"], x.orientation_error_deg["mean"] if x.orientation_error_deg else None, x.train_seconds] for x in r.rows]
    un = [x.position_error_mm["mean"] for x in r.rows if x.method == "unsupervised" and x.target == "position"]
    trajectory = ", ".join(f"{v['trajectory']:.1f}" for v in STEPHAN_TABLE_II_MM.values())
    return {
        "train_seconds": f"{r.train_seconds_each:.0f}",
        "paper_uniform": stephan_uniform_range(),
        "paper_trajectory": f"{trajectory} mm",
        "paper_dofs": ", ".join(str(d) for d in STEPHAN_TABLE_II_MM),
        "table": md_table(["DoF", "target", "method", "mean mm", "median mm", "mean deg", "train s"], rows),
        "unsupervised_range": f"{min(un):.1f}-{max(un):.1f} mm" if un else "-",
    }
