"""Section ``planar``: Schwaiger and Brunner's planar arms, cVAE vs INN vs CEMSSL.

Posterior mismatch: MMD between model samples and rejection samples of the posterior under the
uniform joint prior; re-simulation: distance of FK(sample) to the target; and the area of the
convex hull of the re-simulated points (Schwaiger and Brunner, Fig. 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...kinematics import planar_arm
from ...kinematics.chain import KinematicChain
from ...learning.targets import EVAL_SEED_OFFSET, sample_targets
from ..diversity import wrap_angles
from ..metrics import mmd_imq
from ..precision import evaluate_precision, summarize
from .base import Context, SectionResult, md_table
from .training import train

__all__ = ["PlanarResult", "PlanarRow", "hull97_area", "rejection_posterior", "run", "template_values"]

METHODS = ("cvae", "cinn", "cemssl")
#: a prior sample is accepted into the reference posterior when its tip is this close to the target
REJECTION_EPSILON_M = 0.02


def rejection_posterior(chain: KinematicChain, target: torch.Tensor, n_accept: int, eps: float, gen: torch.Generator, max_draws: int = 40_000_000) -> torch.Tensor:
    """Rejection sampling of the posterior under the uniform joint prior: q with |FK(q) - target| < eps."""
    acc, drawn = [], 0
    while sum(len(a) for a in acc) < n_accept and drawn < max_draws:
        q = chain.sample_configurations(1_000_000, gen)
        p = chain.forward(q).position
        acc.append(q[(p - target).norm(dim=-1) < eps])
        drawn += len(q)
    return torch.cat(acc)[:n_accept]


def hull97_area(points: torch.Tensor, target: torch.Tensor) -> float:
    """Schwaiger and Brunner, Fig. 4: area (m^2) of the convex hull of the 97 % of re-simulated points nearest the target."""
    from scipy.spatial import ConvexHull, QhullError

    d = (points - target).norm(dim=-1)
    keep = points[d <= torch.quantile(d, 0.97)].numpy()
    if len(keep) < 3:
        return 0.0
    try:
        return float(ConvexHull(keep).volume)  # in 2-D, "volume" is the area
    except QhullError:  # collinear points
        return 0.0


@dataclass
class PlanarRow(SectionResult):
    dof: int
    method: str
    mmd: float
    resimulation_error_mm: dict[str, float]
    hull97_area_cm2: float
    train_seconds: float
    reference_samples: int = 0


@dataclass
class PlanarResult(SectionResult):
    rows: list[PlanarRow]
    rejection_epsilon_m: float
    targets_per_arm: int
    train_seconds_each: float


def run(ctx: Context) -> PlanarResult:
    s = ctx.scale
    rows = []
    for dof in s.planar_dofs:
        chain = planar_arm(dof)
        gen = torch.Generator().manual_seed(ctx.seed + dof)
        tpos = chain.forward(chain.sample_configurations(s.planar_targets, gen)).position  # test targets drawn from the prior
        refs = [rejection_posterior(chain, tpos[i], s.planar_reference, REJECTION_EPSILON_M, gen) for i in range(len(tpos))]
        test = sample_targets(chain, s.trained_eval_targets, torch.Generator().manual_seed(ctx.seed + EVAL_SEED_OFFSET))
        for method in METHODS:
            model, info = train(ctx, chain, method, "position", s.train_seconds, seed=ctx.seed)
            q = model.sample(tpos, None, s.planar_reference, generator=torch.Generator().manual_seed(ctx.seed + 1)).q.double()
            mmd = float(np.mean([mmd_imq(wrap_angles(q[i]), wrap_angles(refs[i])) for i in range(len(tpos)) if len(refs[i])]))
            resim = evaluate_precision(model, chain, targets=test, seed=ctx.seed).position_error.flatten()
            hull = float(np.mean([hull97_area(chain.forward(q[i]).position[:, :2], tpos[i, :2]) for i in range(len(tpos))]))
            rows.append(PlanarRow(dof, method, mmd, summarize(resim * 1e3), hull * 1e4, info["seconds"], int(min(len(r) for r in refs))))
            ctx.log(f"  planar {dof}: {method} MMD {mmd:.3f}, re-simulation {float(resim.mean()) * 1e3:.1f} mm")
    return PlanarResult(rows, REJECTION_EPSILON_M, s.planar_targets, s.train_seconds)


def template_values(r: PlanarResult) -> dict[str, str]:
    """The ``planar`` block's placeholders."""
    table = md_table(
        ["DoF", "method", "MMD", "re-simulation mean mm", "median mm", "97 % hull cm²", "train s"],
        [[x.dof, x.method, x.mmd, x.resimulation_error_mm["mean"], x.resimulation_error_mm["median"], x.hull97_area_cm2, x.train_seconds] for x in r.rows],
    )
    dofs = sorted({x.dof for x in r.rows})

    def lowest(key) -> str:
        return ", ".join(f"{d}: {min((x for x in r.rows if x.dof == d), key=key).method}" for d in dofs)

    return {
        "epsilon_cm": f"{r.rejection_epsilon_m * 100:.0f}",
        "targets_per_arm": str(r.targets_per_arm),
        "train_seconds": f"{r.train_seconds_each:.0f}",
        "table": table,
        "lowest_mmd": lowest(lambda x: x.mmd),
        "lowest_resimulation": lowest(lambda x: x.resimulation_error_mm["mean"]),
    }
