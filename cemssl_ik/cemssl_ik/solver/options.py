"""Options and result of :meth:`IKSolver.solve`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["SolverOptions", "IKResult"]


@dataclass
class SolverOptions:
    """Options of one solve call.

    Attributes:
        num_solutions: K, solutions returned per target.
        refine: polish samples with damped least squares.
        refine_iterations: maximum LM iterations (samples converging slowly near a singularity
            use them; converged ones stop early).
        give_up_after: after this many iterations, samples still farther than 1 mm / 1e-3 rad
            (residual norm) are abandoned (see :func:`refine`).
        rescue_rounds: extra rounds, after ``max_rounds``, for targets with no solution yet: twice
            the samples, refined patiently (no abandoning), for the rare reachable target whose
            samples converge slowly (near a singularity or the workspace boundary).  Unreachable
            targets pay for these rounds too.
        damping: smallest LM damping lambda (m^2); small keeps steps Gauss-Newton near a solution.
        initial_damping: LM damping of the first step (grows on rejected steps, shrinks towards
            ``damping`` on accepted ones).
        max_step: largest joint change of one LM step (radians / metres); far samples take
            bounded steps instead of overshooting into another branch.
        position_tolerance: accept a solution within this distance of the target (metres).
        orientation_tolerance: and within this angle of the target rotation (radians; pose targets).
        distinct_tolerance: solutions whose joints differ by less than this (radians / metres,
            max over joints, modulo 2*pi for revolute joints) are the same solution.
        oversample: samples drawn per requested solution and round.
        position_oversample: the same for position-only targets of a chain with more than 3
            joints: their solutions form a continuum, so nearly every refined sample is a new
            distinct solution and a small margin suffices (later rounds fill any gap).
        max_samples: cap of the samples per target and round (a 6-DoF pose has at most 16
            solutions, so K = 64 need not draw 256 samples; later rounds still add more while
            they find new solutions).
        max_rounds: sampling rounds before giving up on K distinct valid solutions.
        random_fraction: share of each round's samples drawn uniformly in joint space instead of
            from the model (refinement turns them into solutions too).  A trained generator can
            concentrate on fewer modes than exist (mode collapse); this keeps rare branches
            reachable.  0 uses the model alone.  None (default): 0.75 for a model with a
            continuous latent only, 0 for a model with branch classes, which asks for every
            branch explicitly (later rounds still draw uniform samples for what it missed;
            ``cemssl-ik bench solver -k 8 --batch 1000`` with the shipped pose model: 98.0 %
            coverage at 79k solutions/s for 0, 98.6 % at 60k for 0.25).
        min_samples: samples per target and round at least (a K = 1 request still draws several,
            so one unlucky sample does not fail the request).
        singular_steps: near singularities, Newton steps along the Jacobian's weakest direction
            where LM stalls, and starts at the partners of near-singular solutions (compiled
            kernel backend only; see :mod:`cemssl_ik.kernels`).  Off: plain LM, as before issue 28
            (wrist-singular UR3 poses lost ~45 % of their solutions).
    """

    num_solutions: int = 8
    refine: bool = True
    refine_iterations: int = 30
    give_up_after: int = 8
    rescue_rounds: int = 2
    damping: float = 1e-9
    initial_damping: float = 1e-3
    max_step: float = 1.0
    position_tolerance: float = 1e-6
    orientation_tolerance: float = 1e-5
    distinct_tolerance: float = 1e-2
    oversample: int = 4
    position_oversample: float = 2.0
    max_samples: int = 64
    max_rounds: int = 3
    random_fraction: float | None = None
    min_samples: int = 16
    singular_steps: bool = True

    def __post_init__(self) -> None:
        if self.num_solutions < 1:
            raise ValueError(f"num_solutions must be >= 1, got {self.num_solutions}")
        for name in ("position_tolerance", "orientation_tolerance", "distinct_tolerance", "damping"):
            v = getattr(self, name)
            if math.isnan(v) or v < 0 or (math.isinf(v) and name in ("distinct_tolerance", "damping")):
                raise ValueError(f"{name} must be >= 0 (tolerances may be inf: accept any error), got {v}")
        if self.random_fraction is not None and not 0 <= self.random_fraction <= 1:
            raise ValueError(f"random_fraction must be in [0, 1], got {self.random_fraction}")
        if self.oversample < 1 or self.position_oversample < 1 or self.max_rounds < 1 or self.refine_iterations < 0 or self.min_samples < 1 or self.max_samples < 1 or self.rescue_rounds < 0 or self.give_up_after < 0:
            raise ValueError("oversample, max_samples, min_samples and max_rounds must be >= 1, refine_iterations >= 0")
        if not (self.max_step > 0 and self.initial_damping >= 0):
            raise ValueError("max_step must be > 0 and initial_damping >= 0")


@dataclass(frozen=True)
class IKResult:
    """Fixed-shape result of :meth:`IKSolver.solve` for B targets and K requested solutions.

    Attributes:
        solutions: (B, K, dof) float64 joint values (radians / metres); NaN where not valid.
        valid: (B, K) bool.
        position_error: (B, K) metres (NaN where not valid).
        orientation_error: (B, K) radians (0 for position targets; NaN where not valid).
        branch: (B, K) int64 configuration class (-1: none defined for this chain, or not valid).
        num_valid: (B,) number of valid solutions per target.
        timings: seconds spent per stage.
    """

    solutions: torch.Tensor
    valid: torch.Tensor
    position_error: torch.Tensor
    orientation_error: torch.Tensor
    branch: torch.Tensor
    num_valid: torch.Tensor
    timings: dict = field(default_factory=dict)
