"""The forward-model protocol: where does a batch of joint configurations put the tool?

CEMSSL only needs ``evaluate(q) -> ForwardResult``.  The analytic FK is the default; the learner
node plugs in slower, fallible forward models (a simulator, the real arm) behind the same protocol.
A forward model may fail for some samples (unreachable, timed out, collision): it marks them in
``valid`` and the trainer drops them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from ..kinematics.chain import KinematicChain

__all__ = ["ForwardResult", "ForwardModel", "AnalyticForwardModel"]


@dataclass(frozen=True)
class ForwardResult:
    """Reached tool poses of a batch.

    Attributes:
        q: (B, dof) joint values actually reached (measured; may differ from the commanded ones).
        position: (B, 3) metres, chain base frame.
        rotation: (B, 3, 3).
        valid: (B,) bool; False where the forward model could not evaluate the sample.
    """

    q: torch.Tensor
    position: torch.Tensor
    rotation: torch.Tensor
    valid: torch.Tensor


@runtime_checkable
class ForwardModel(Protocol):
    """Anything that maps commanded joint values (B, dof) to reached poses, batched."""

    def evaluate(self, q: torch.Tensor) -> ForwardResult: ...


class AnalyticForwardModel:
    """Exact batched FK of a :class:`KinematicChain` (vectorized: one call for the whole batch)."""

    def __init__(self, chain: KinematicChain) -> None:
        self.chain = chain

    @torch.no_grad()
    def evaluate(self, q: torch.Tensor) -> ForwardResult:
        fk = self.chain.forward(q)
        valid = torch.isfinite(fk.position).all(-1)
        return ForwardResult(q, fk.position, fk.rotation, valid)
