"""Precision of an inverse model alone (the CEMSSL paper's eq. 3): no refinement, held-out targets.

:func:`evaluate_precision` lives with the trainers (:mod:`cemssl_ik.learning.heldout`), which use it
while they train; this module adds the per-member comparison of ``cemssl-ik prune``.
"""

from __future__ import annotations

import torch

from ..kinematics.chain import KinematicChain
from ..learning.heldout import PrecisionReport, evaluate_precision, summarize
from ..learning.targets import TargetBatch
from ..models.generators import IKGenerator
from ..seeds import SELECTION_SEED_OFFSET

__all__ = ["PrecisionReport", "evaluate_precision", "member_errors", "summarize", "SELECTION_SEED_OFFSET"]


@torch.no_grad()
def member_errors(model: IKGenerator, chain: KinematicChain, targets: TargetBatch, seed: int = 0) -> torch.Tensor:
    """(M,) mean position error (metres) of each ensemble member alone on ``targets``, one sample each."""
    rot = targets.rotation if model.config.target == "pose" else None
    # M samples per target: sample k comes from member k
    res = model.sample(targets.position, rot, model.num_members, generator=torch.Generator(device=model.device).manual_seed(seed))
    return (chain.forward(res.q.double().cpu()).position - targets.position[:, None]).norm(dim=-1).mean(0)
