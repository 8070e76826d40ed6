"""IKSolver: learned samples -> refined, wrapped, filtered, distinct, ranked joint solutions.

Pipeline for a batch of B targets (position, or pose = position + rotation):

1. **sample** ``oversample * K`` latents per target across the ensemble members;
2. **refine** (optional) with a few batched damped-least-squares (Levenberg-Marquardt) steps through
   the analytic Jacobian in float64: minimum-norm steps from each sample, so a solution stays in the
   branch its sample came from and reaches machine precision; near a singularity, where LM crawls
   along a narrow valley of near-solutions, Newton steps along the weakest direction (compiled
   kernels, ``singular_steps``), and starts at the partners of near-singular solutions (the other
   root of a fold; a UR's flipped wrist and mirrored elbow), which samples rarely tell apart;
3. **wrap** every revolute joint to the 2*pi copy nearest the seed (or zero) inside the real limits;
4. **filter** solutions outside the tolerances or the limits;
5. **deduplicate**: two solutions closer than ``distinct_tolerance`` (max joint difference modulo
   2*pi) are one, unless a UR pose's configuration classes tell them apart (near a singularity two
   solutions can be closer than the tolerance);
6. **rank** by distance to the seed, or, without a seed, farthest-point order (most diverse first).

If fewer than K valid distinct solutions came out, more samples are drawn (``max_rounds``).  The
result has a fixed shape (B, K, dof) with a validity mask.
"""

from .batcher import RequestBatcher
from .core import IKSolver, refined_answers
from .options import IKResult, SolverOptions
from .single_request import _NumpySampler, _serial_blas
from .torch_backend import pose_error, refine

__all__ = ["SolverOptions", "IKResult", "IKSolver", "RequestBatcher", "refine", "pose_error", "refined_answers", "_NumpySampler", "_serial_blas"]
