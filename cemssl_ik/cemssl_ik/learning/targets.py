"""Target sets: the unlabeled set U of CEMSSL and held-out evaluation targets (FK of random joints)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..kinematics.chain import KinematicChain
from ..seeds import EVAL_SEED_OFFSET

__all__ = ["TargetBatch", "sample_targets", "EVAL_SEED_OFFSET"]


@dataclass(frozen=True)
class TargetBatch:
    """Reachable targets and the joint values that generated them.

    Attributes:
        q: (N, dof) generating joint values (uniform within the learning limits).
        position: (N, 3) metres.
        rotation: (N, 3, 3).
    """

    q: torch.Tensor
    position: torch.Tensor
    rotation: torch.Tensor

    def __len__(self) -> int:
        return self.q.shape[0]

    def index(self, idx: torch.Tensor) -> "TargetBatch":
        return TargetBatch(self.q[idx], self.position[idx], self.rotation[idx])


@torch.no_grad()
def sample_targets(chain: KinematicChain, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> TargetBatch:
    """n targets: FK of joint values drawn uniformly within the chain's learning limits."""
    q = chain.sample_configurations(n, generator, dtype=dtype)
    fk = chain.forward(q)
    return TargetBatch(q, fk.position, fk.rotation)
