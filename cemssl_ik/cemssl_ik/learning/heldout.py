"""Precision of an inverse model alone on held-out targets (the CEMSSL paper's eq. 3): no refinement.

What a trainer watches while it trains (periodic evaluation, keep-best, weight averaging) and what
:mod:`cemssl_ik.evaluation` reports.  It lives with the trainers, below the evaluation package, so
that training never imports evaluation: a trainer receives an :data:`Evaluator` (by default
:func:`heldout_evaluator`) and calls it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..kinematics.chain import KinematicChain
from ..kinematics.transforms import rotation_angle
from ..models.generators import IKGenerator
from ..seeds import EVAL_SEED_OFFSET, VALIDATION_SAMPLING_SEED_OFFSET, VALIDATION_SEED_OFFSET
from .targets import TargetBatch, sample_targets

__all__ = ["Evaluator", "PrecisionReport", "evaluate_precision", "heldout_evaluator", "summarize"]

#: held-out mean position error (metres) of a model alone; a trainer calls it on the model it trains
Evaluator = Callable[[IKGenerator], float]


def summarize(values: torch.Tensor) -> dict[str, float]:
    """mean / median / p95 / max of a 1-D tensor (float64)."""
    v = values.double().flatten()
    return {
        "mean": float(v.mean()),
        "median": float(v.median()),
        "p95": float(torch.quantile(v, 0.95)) if v.numel() < 16_000_000 else float(v.sort().values[int(0.95 * (v.numel() - 1))]),
        "max": float(v.max()),
    }


@dataclass(frozen=True)
class PrecisionReport:
    """Errors of K samples for each of N targets.

    Attributes:
        position_error: (N, K) metres.
        orientation_error: (N, K) radians, or None for position-only models.
        in_limits: (N, K) bool, within the chain's real joint limits.
        seconds: wall time of sampling (model inference only).
    """

    position_error: torch.Tensor
    orientation_error: torch.Tensor | None
    in_limits: torch.Tensor
    seconds: float

    def to_dict(self) -> dict:
        n, k = self.position_error.shape
        out = {
            "position_error_mm": summarize(self.position_error * 1e3),
            "in_limits_fraction": float(self.in_limits.double().mean()),
            "num_targets": n,
            "samples_per_target": k,
            "seconds": self.seconds,
        }
        if self.orientation_error is not None:
            out["orientation_error_deg"] = summarize(torch.rad2deg(self.orientation_error))
        return out


@torch.no_grad()
def evaluate_precision(
    model: IKGenerator,
    chain: KinematicChain,
    num_targets: int = 2000,
    samples_per_target: int = 1,
    seed: int = 0,
    targets: TargetBatch | None = None,
    chunk: int = 8192,
) -> PrecisionReport:
    """Sample the model for held-out targets and measure the reached poses with exact FK (float64).

    Targets are FK of uniformly random joints within the model's learning limits, drawn with
    ``seed + EVAL_SEED_OFFSET`` (distinct from training draws), unless ``targets`` is given.
    Models with branch classes (``ModelConfig.branches``) are conditioned on the class of the
    held-out joints for the first sample (a branch that exists for the target) and on the next
    classes in turn for further samples.
    """
    was_training = model.training
    model.eval()
    if targets is None:
        targets = sample_targets(chain, num_targets, torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET))
    gen = torch.Generator(device=model.device).manual_seed(seed)
    pos_errs, rot_errs, in_lim = [], [], []
    elapsed = 0.0
    per_chunk = max(1, chunk // samples_per_target)
    for s in range(0, len(targets), per_chunk):
        t = targets.index(torch.arange(s, min(s + per_chunk, len(targets))))
        rot = t.rotation if model.config.target == "pose" else None
        t0 = time.perf_counter()
        classes = None
        if model.num_classes:
            # a branch model is asked for the branch of the held-out configuration first (a branch
            # that exists for this target), then for the others in turn
            own = model.branch_labeler(t.q)
            classes = (own[:, None] + model.slot_classes(samples_per_target)[None].cpu()) % model.num_classes
        # target i's first sample from member i mod M: with few samples per target every member
        # still serves its share, so the figures are those of the whole ensemble
        offset = torch.arange(s, s + len(t)) % model.num_members
        res = model.sample(t.position, rot, samples_per_target, generator=gen, classes=classes, member_offset=offset)
        elapsed += time.perf_counter() - t0
        q = res.q.double().cpu()
        fk = chain.forward(q)
        pos_errs.append((fk.position - t.position[:, None]).norm(dim=-1))
        if rot is not None:
            rot_errs.append(rotation_angle(fk.rotation, t.rotation[:, None].expand_as(fk.rotation)))
        in_lim.append(chain.within_limits(q))
    model.train(was_training)
    return PrecisionReport(
        torch.cat(pos_errs),
        torch.cat(rot_errs) if rot_errs else None,
        torch.cat(in_lim),
        elapsed,
    )


def heldout_evaluator(chain: KinematicChain, seed: int, num_targets: int = 1000) -> Evaluator:
    """The default :data:`Evaluator` of a trainer seeded ``seed``: mean position error (metres) of
    one sample per target on ``num_targets`` fixed held-out targets of ``chain``.

    The targets are drawn once, with ``seed + VALIDATION_SEED_OFFSET`` (distinct from the training
    draws and from the final evaluation's targets), so successive calls compare like with like.
    """
    targets = sample_targets(chain, num_targets, torch.Generator().manual_seed(seed + VALIDATION_SEED_OFFSET))

    def error(model: IKGenerator) -> float:
        return float(evaluate_precision(model, chain, targets=targets, seed=seed + VALIDATION_SAMPLING_SEED_OFFSET).position_error.mean())

    return error
