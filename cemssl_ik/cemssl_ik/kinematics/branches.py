"""Configuration classes ("branches") of joint solutions: a discrete label computed from q.

A 6-DoF arm reaches most poses in several discrete ways (the UR family: shoulder left / right,
elbow up / down, wrist flipped or not: up to 8 solutions).  A generative inverse model with only a
continuous latent has to tear its latent space apart to cover such disconnected solution sets and
lands between branches; giving it the branch as a discrete part of its latent (see
``ModelConfig.branches``) turns the problem into one smooth regression per branch, and lets a
solver ask for each branch explicitly.

Labelers are named by a spec string stored in model checkpoints:

- a UR DH key (``ur3``, ``ur5``, ...; see :data:`~cemssl_ik.kinematics.ur_analytic.UR_DH`):
  the 8 classes of :func:`~cemssl_ik.kinematics.ur_analytic.ur_branch_ids`, which are the index of
  the closed-form solution; a full pose has at most one solution per class (modulo 2*pi);
- ``sin:i,j,...``: one bit per listed joint, set where sin(q_i) >= 0 (e.g. ``sin:1`` is the elbow
  of a planar 2-link arm); a generic labeling with no uniqueness claim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .ur_analytic import UR_DH, ur_branch_ids

__all__ = ["BranchLabeler", "branch_labeler", "check_chain", "ur_kinematics"]


@dataclass(frozen=True)
class BranchLabeler:
    """Maps joint values to configuration classes.

    Attributes:
        spec: the spec string (see the module docstring).
        num_classes: number of classes C; labels are 0..C-1.
        dof: number of joints the labeler expects (None: any with enough joints).
        unique_pose_solution: True when a full pose has at most one solution per class (modulo
            2*pi), so a solver that found one solution in every class has found them all.
    """

    spec: str
    num_classes: int
    dof: int | None
    unique_pose_solution: bool
    _joints: tuple[int, ...] = ()

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """(*batch, dof) -> (*batch,) int64 class labels."""
        if self.dof is not None and q.shape[-1] != self.dof:
            raise ValueError(f"branch labeler {self.spec!r} expects {self.dof} joints, got {q.shape[-1]}")
        if self._joints:
            s = torch.sin(q[..., list(self._joints)]) >= 0
            weights = 2 ** torch.arange(len(self._joints), device=q.device)
            return (s.long() * weights).sum(-1)
        return ur_branch_ids(q, self.spec)

    def check(self, dof: int) -> None:
        """Raise ValueError when the labeler cannot label joints of a ``dof``-joint chain."""
        if self.dof is not None and dof != self.dof:
            raise ValueError(f"branch labeler {self.spec!r} is for {self.dof}-joint arms, the chain has {dof}")
        if self._joints and max(self._joints) >= dof:
            raise ValueError(f"branch labeler {self.spec!r} names joint {max(self._joints)}, the chain has {dof} joints")


def ur_kinematics(chain, specs=None) -> tuple[str, str] | None:
    """(UR model, frame) when the chain's tip pose is that UR model's, else None.

    The UR classes (and their one-solution-per-class claim) hold for a chain whose tip pose equals
    the DH model's at random configurations, whatever its links are named: ``frame`` is ``base``
    (the DH base) or ``base_link`` (the base turned by pi about z, as in the UR description),
    whichever the chain's base matches.  ``specs``: the UR models to try (default: every one of
    :data:`~cemssl_ik.kinematics.ur_analytic.UR_DH`).
    """
    if chain.dof != 6 or not all(chain.periodic):
        return None
    from .ur_analytic import URAnalyticIK

    q = chain.sample_configurations(8, torch.Generator().manual_seed(0))
    fk = chain.forward(q)
    flip = torch.tensor([-1.0, -1.0, 1.0], dtype=q.dtype)  # base_link = Rz(pi) base
    for spec in UR_DH if specs is None else specs:
        T = URAnalyticIK(spec).forward(q)  # base <- tool0
        for frame, p, R in (("base", T[..., :3, 3], T[..., :3, :3]), ("base_link", T[..., :3, 3] * flip, T[..., :3, :3] * flip[:, None])):
            if torch.allclose(fk.position, p, atol=1e-6) and torch.allclose(fk.rotation, R, atol=1e-6):
                return spec, frame
    return None


def check_chain(labeler: BranchLabeler, chain) -> None:
    """Raise ValueError when ``labeler`` does not fit ``chain``.

    A UR labeler's classes and its one-solution-per-class claim hold for that UR model's joints:
    the chain's tip pose must equal the DH model's (``base`` or ``base_link`` -> ``tool0``, any link
    names) at random configurations (:func:`ur_kinematics`).  Otherwise a solver would stop looking
    for solutions too early.
    """
    labeler.check(chain.dof)
    if labeler.spec not in UR_DH:
        return
    if ur_kinematics(chain, (labeler.spec,)) is None:
        raise ValueError(
            f"branch labeler {labeler.spec!r} needs the {labeler.spec} joints from base / base_link to tool0; "
            f"chain {chain.name!r} ({chain.base_link} -> {chain.tip_link}) has other kinematics"
        )


def branch_labeler(spec: str) -> BranchLabeler:
    """The labeler named by ``spec`` (a UR DH key, or ``sin:i,j,...``)."""
    if spec in UR_DH:
        return BranchLabeler(spec, 8, 6, True)
    if spec.startswith("sin:"):
        try:
            joints = tuple(int(v) for v in spec[4:].split(","))
        except ValueError:
            joints = ()
        if not joints or min(joints) < 0 or len(set(joints)) != len(joints) or len(joints) > 8:
            raise ValueError(f"branch spec {spec!r}: expected sin:i,j,... with 1-8 distinct joint indices >= 0")
        return BranchLabeler(spec, 2 ** len(joints), None, False, joints)
    raise ValueError(f"unknown branch spec {spec!r}: use a UR model ({', '.join(sorted(UR_DH))}) or sin:i,j,...")
