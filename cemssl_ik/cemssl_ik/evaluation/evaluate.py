"""One evaluation of an inverse model: precision, class coverage and MMD side by side.

Precision alone hides a model that collapsed onto one branch; diversity alone hides a model that
misses the target.  :func:`evaluate_model` measures both on the same held-out targets, and is what
``cemssl-ik eval`` and the report's shipped-model table print.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..kinematics.chain import KinematicChain
from ..learning.targets import EVAL_SEED_OFFSET, TargetBatch, sample_targets
from ..models.generators import IKGenerator
from .diversity import DiversityReport, evaluate_diversity, ur_model_of
from .metrics import success_rates
from .precision import PrecisionReport, evaluate_precision

__all__ = ["ModelEvaluation", "evaluate_model"]


@dataclass(frozen=True)
class ModelEvaluation:
    """Precision and diversity of one model on the same targets.

    Attributes:
        precision: errors of ``samples_per_target`` samples on every held-out target.
        diversity: class coverage / MMD on the first ``diversity.targets`` of those targets, or
            None where there is no analytic reference (not a UR arm, or not asked for).
        diversity_skipped: why ``diversity`` is None ("" when it is not).
    """

    precision: PrecisionReport
    diversity: DiversityReport | None
    diversity_skipped: str = ""

    @property
    def class_coverage(self) -> float | None:
        return self.diversity.class_coverage if self.diversity else None

    @property
    def mmd(self) -> float | None:
        return self.diversity.mmd if self.diversity else None

    def to_dict(self) -> dict:
        out = self.precision.to_dict()
        out["success"] = success_rates(self.precision.position_error.flatten())
        out["class_coverage"] = self.class_coverage
        out["mmd"] = self.mmd
        out["diversity"] = self.diversity.to_dict() if self.diversity else {"skipped": self.diversity_skipped}
        return out


def evaluate_model(
    model: IKGenerator,
    chain: KinematicChain,
    num_targets: int = 2000,
    samples_per_target: int = 1,
    seed: int = 0,
    targets: TargetBatch | None = None,
    diversity_targets: int = 100,
    diversity_samples: int = 128,
    reference_orientations: int = 256,
) -> ModelEvaluation:
    """Precision on ``num_targets`` held-out targets (:func:`~.precision.evaluate_precision`) and
    class coverage / MMD (:func:`~.diversity.evaluate_diversity`) on the first
    ``diversity_targets`` of them; ``diversity_targets=0`` skips the diversity part."""
    if targets is None:
        if num_targets < 1:
            raise ValueError(f"num_targets must be >= 1, got {num_targets}")
        targets = sample_targets(chain, num_targets, torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET))
    precision = evaluate_precision(model, chain, targets=targets, samples_per_target=samples_per_target, seed=seed)
    if diversity_targets <= 0:
        return ModelEvaluation(precision, None, "not asked for")
    if ur_model_of(chain) is None:
        return ModelEvaluation(precision, None, f"chain {chain.name!r} is not a UR arm: no analytic reference posterior")
    sub = targets.index(torch.arange(min(diversity_targets, len(targets))))
    diversity = evaluate_diversity(model, chain, sub, diversity_samples, reference_orientations, seed=seed)
    return ModelEvaluation(precision, diversity)
