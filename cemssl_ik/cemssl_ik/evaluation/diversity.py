"""Diversity of a UR inverse model against the analytic reference posterior.

A multi-solution model is only useful if its samples spread over the target's solutions.  For UR
arms the solutions are known in closed form, which gives a reference to measure that spread:

- position-only targets: the analytic solutions of the position over random orientations (a
  uniform draw of rotations); for pose targets: the analytic solutions of the pose; in both
  cases only the solutions inside the chain's learning limits (the support of the uniform prior
  the models are trained under);
- **class coverage**: share of the configuration classes (shoulder, elbow, wrist) present in the
  reference that are hit by at least one model sample within ``near_m`` of the target (and, for
  pose models, within ``near_rad`` of its orientation), averaged over targets;
- **MMD**: multi-scale inverse-multiquadric MMD (:func:`~.metrics.mmd_imq`) between all the
  model's samples and the reference (joint angles wrapped to [-pi, pi)), averaged over targets;
  for position-only targets a second, independent reference set gives the estimate's noise floor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..kinematics.branches import branch_labeler, check_chain
from ..kinematics.chain import KinematicChain
from ..kinematics.limits import nearest_periodic_copy
from ..kinematics.transforms import quaternion_to_matrix, rotation_angle
from ..kinematics.ur_analytic import UR_DH, URAnalyticIK, ur_branch_ids
from ..learning.targets import TargetBatch
from ..models.generators import IKGenerator
from .metrics import mmd_imq

__all__ = ["DiversityReport", "ReferencePosterior", "evaluate_diversity", "reference_posterior", "ur_model_of", "wrap_angles"]

#: the reference is cut to this many solutions per target (and to the smallest reference's size)
MAX_REFERENCE = 400


def wrap_angles(q: torch.Tensor) -> torch.Tensor:
    """Joint angles wrapped to [-pi, pi)."""
    return torch.remainder(q + math.pi, 2 * math.pi) - math.pi


def ur_model_of(chain: KinematicChain) -> str | None:
    """The UR model (``ur3``, ``ur5``, ...) whose closed-form IK solves ``chain``, or None."""
    for spec in UR_DH:
        try:
            check_chain(branch_labeler(spec), chain)
        except ValueError:
            continue
        return spec
    return None


def _frame_of(chain: KinematicChain, spec: str) -> str:
    """``base`` or ``base_link``: the DH frame the chain's positions are expressed in."""
    q = chain.sample_configurations(4, torch.Generator().manual_seed(0))
    T = URAnalyticIK(spec).forward(q)
    return "base" if torch.allclose(chain.forward(q).position, T[..., :3, 3], atol=1e-6) else "base_link"


@dataclass(frozen=True)
class ReferencePosterior:
    """Analytic solutions per target (wrapped, each (n_b, 6)) and the classes present (B, 8)."""

    solutions: list[torch.Tensor]
    classes: torch.Tensor

    def smallest(self) -> int:
        return min((len(s) for s in self.solutions), default=0)


def _in_learning_limits(chain: KinematicChain | None, q: torch.Tensor) -> torch.Tensor:
    """Solutions with a 2*pi copy inside the chain's learning limits (the prior's support), as that copy."""
    if chain is None or not len(q):
        return q
    lo, hi = chain.learning_limits()
    moved, within = nearest_periodic_copy(q, torch.zeros(q.shape[-1], dtype=q.dtype), lo, hi, chain.periodic)
    return moved[within]


@torch.no_grad()
def reference_posterior(spec: str, frame: str, position: torch.Tensor, rotation: torch.Tensor | None, orientations: int, seed: int, chain: KinematicChain | None = None) -> ReferencePosterior:
    """Analytic solutions of each target: of the pose when ``rotation`` is given, else of the
    position over ``orientations`` random rotations (drawn with ``seed``); with ``chain``, only
    those inside its learning limits (a UR3 limited to +-90 deg has fewer solutions)."""
    B = len(position)
    if rotation is None:
        quat = torch.randn(B, orientations, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        R = quaternion_to_matrix(quat.reshape(-1, 4))
        P = position[:, None].expand(B, orientations, 3).reshape(-1, 3)
    else:
        orientations, R, P = 1, rotation, position
    res = URAnalyticIK(spec).solve(P.double(), R.double(), frame=frame)
    sol = res.solutions.reshape(B, orientations * 8, 6)
    ok = res.valid.reshape(B, orientations * 8)
    refs, classes = [], torch.zeros(B, 8, dtype=torch.bool)
    for b in range(B):
        q = _in_learning_limits(chain, sol[b][ok[b]])
        refs.append(wrap_angles(q))
        if len(q):
            classes[b, ur_branch_ids(q, spec).unique()] = True
    return ReferencePosterior(refs, classes)


@dataclass(frozen=True)
class DiversityReport:
    """Class coverage and MMD of a model's samples against the analytic reference posterior.

    Attributes:
        class_coverage: mean over targets of the share of reference classes hit (0..1).
        mmd: mean over targets of the squared MMD between samples and reference (an unbiased
            estimate: near 0 it can come out slightly negative; a pose's reference has at most 8
            solutions, so pose models need many targets for a stable mean).
        mmd_noise_floor: MMD between two independent reference sets (position-only; 0 for poses).
        targets, samples_per_target: how many targets and model samples per target.
        reference_orientations: random orientations per position (1 for pose targets).
        near_m, near_rad: a sample counts towards class coverage within these of the target.
    """

    class_coverage: float
    mmd: float
    mmd_noise_floor: float
    targets: int
    samples_per_target: int
    reference_orientations: int
    near_m: float
    near_rad: float

    def to_dict(self) -> dict:
        return asdict(self)


def _coverage(chain: KinematicChain, spec: str, q: torch.Tensor, t: TargetBatch, pose: bool, ref_classes: torch.Tensor, near_m: float, near_rad: float) -> list[float]:
    fk = chain.forward(torch.nan_to_num(q))
    near = (fk.position - t.position[:, None]).norm(dim=-1) <= near_m
    if pose:
        near &= rotation_angle(fk.rotation, t.rotation[:, None].expand_as(fk.rotation)) <= near_rad
    out = []
    for b in range(len(q)):
        got = torch.zeros(8, dtype=torch.bool)
        if near[b].any():
            got[ur_branch_ids(q[b][near[b]], spec).unique()] = True
        out.append(float((got & ref_classes[b]).sum()) / max(1, int(ref_classes[b].sum())))
    return out


@torch.no_grad()
def evaluate_diversity(
    model: IKGenerator,
    chain: KinematicChain,
    targets: TargetBatch,
    samples_per_target: int = 128,
    reference_orientations: int = 256,
    seed: int = 0,
    near_m: float = 0.01,
    near_rad: float = 0.1,
) -> DiversityReport:
    """Sample the model ``samples_per_target`` times for each target and compare the samples with
    the analytic reference posterior (see the module docstring).  The chain must be a UR arm
    (:func:`ur_model_of`); raises ValueError otherwise."""
    spec = ur_model_of(chain)
    if spec is None:
        raise ValueError(f"chain {chain.name!r} is not a UR arm: no analytic reference posterior")
    if samples_per_target < 2 or len(targets) < 1:
        raise ValueError(f"need >= 1 target and >= 2 samples per target, got {len(targets)} and {samples_per_target}")
    frame = _frame_of(chain, spec)
    pose = model.config.target == "pose"
    rot = targets.rotation if pose else None
    refs = reference_posterior(spec, frame, targets.position, rot, reference_orientations, seed + 5, chain)
    # a pose's reference is its (at most 8) solutions, exact: no noise floor; a position's is a
    # random draw, cut to a common size so every target's MMD has the same resolution
    floor, n_ref = 0.0, MAX_REFERENCE
    if not pose:
        refs2 = reference_posterior(spec, frame, targets.position, None, reference_orientations, seed + 6, chain)
        n_ref = min(n_ref, refs.smallest(), refs2.smallest())
        floor = float(np.mean([mmd_imq(a[:n_ref], b[:n_ref]) for a, b in zip(refs.solutions, refs2.solutions)])) if n_ref else math.nan
    was_training = model.training
    model.eval()
    q = model.sample(targets.position, rot, samples_per_target, generator=torch.Generator(device=model.device).manual_seed(seed + 11)).q.double().cpu()
    model.train(was_training)
    coverage = _coverage(chain, spec, q, targets, pose, refs.classes, near_m, near_rad)
    mmds = [mmd_imq(wrap_angles(q[b]), refs.solutions[b][: max(n_ref, 1)]) for b in range(len(q)) if len(refs.solutions[b])]
    return DiversityReport(
        class_coverage=float(np.mean(coverage)),
        mmd=float(np.mean(mmds)) if mmds else math.nan,
        mmd_noise_floor=floor,
        targets=len(targets),
        samples_per_target=samples_per_target,
        reference_orientations=1 if pose else reference_orientations,
        near_m=near_m,
        near_rad=near_rad,
    )
