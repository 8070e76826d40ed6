"""IKSolver: learned samples -> refined, wrapped, filtered, distinct, ranked joint solutions.

Pipeline for a batch of B targets (position, or pose = position + rotation):

1. **sample** ``oversample * K`` latents per target across the ensemble members;
2. **refine** (optional) with a few batched damped-least-squares (Levenberg-Marquardt) steps through
   the analytic Jacobian in float64: minimum-norm steps from each sample, so a solution stays in the
   branch its sample came from and reaches machine precision;
3. **wrap** every revolute joint to the 2*pi copy nearest the seed (or zero) inside the real limits;
4. **filter** solutions outside the tolerances or the limits;
5. **deduplicate**: two solutions closer than ``distinct_tolerance`` (max joint difference modulo
   2*pi) are one;
6. **rank** by distance to the seed, or, without a seed, farthest-point order (most diverse first).

If fewer than K valid distinct solutions came out, more samples are drawn (``max_rounds``).  The
result has a fixed shape (B, K, dof) with a validity mask.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import torch

from .kinematics.chain import KinematicChain
from .kinematics.limits import nearest_periodic_copy
from .kinematics.transforms import quaternion_to_matrix, rotation_angle
from .kinematics.ur_analytic import ur_branch_ids
from .models.generators import IKGenerator

__all__ = ["SolverOptions", "IKResult", "IKSolver", "refine", "pose_error"]


@dataclass
class SolverOptions:
    """Options of one solve call.

    Attributes:
        num_solutions: K, solutions returned per target.
        refine: polish samples with damped least squares.
        refine_iterations: maximum LM iterations.
        damping: LM damping lambda (m^2); small keeps steps Gauss-Newton near a solution.
        position_tolerance: accept a solution within this distance of the target (metres).
        orientation_tolerance: and within this angle of the target rotation (radians; pose targets).
        distinct_tolerance: solutions whose joints differ by less than this (radians / metres,
            max over joints, modulo 2*pi for revolute joints) are the same solution.
        oversample: samples drawn per requested solution and round.
        max_rounds: sampling rounds before giving up on K distinct valid solutions.
        random_fraction: share of each round's samples drawn uniformly in joint space instead of
            from the model (refinement turns them into solutions too).  A trained generator can
            concentrate on fewer modes than exist (mode collapse); this keeps rare branches
            reachable.  0 uses the model alone.
        min_samples: samples per target and round at least (a K = 1 request still draws several,
            so one unlucky sample does not fail the request).
    """

    num_solutions: int = 8
    refine: bool = True
    refine_iterations: int = 20
    damping: float = 1e-9
    position_tolerance: float = 1e-6
    orientation_tolerance: float = 1e-5
    distinct_tolerance: float = 1e-2
    oversample: int = 4
    max_rounds: int = 3
    random_fraction: float = 0.5
    min_samples: int = 16

    def __post_init__(self) -> None:
        if self.num_solutions < 1:
            raise ValueError(f"num_solutions must be >= 1, got {self.num_solutions}")
        for name in ("position_tolerance", "orientation_tolerance", "distinct_tolerance", "damping"):
            v = getattr(self, name)
            if math.isnan(v) or v < 0 or (math.isinf(v) and name in ("distinct_tolerance", "damping")):
                raise ValueError(f"{name} must be >= 0 (tolerances may be inf: accept any error), got {v}")
        if not 0 <= self.random_fraction <= 1:
            raise ValueError(f"random_fraction must be in [0, 1], got {self.random_fraction}")
        if self.oversample < 1 or self.max_rounds < 1 or self.refine_iterations < 0 or self.min_samples < 1:
            raise ValueError("oversample and max_rounds must be >= 1, refine_iterations >= 0")


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


def _rotation_log(R: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) rotation -> (N, 3) axis * angle (robust near 0; accurate enough near pi for LM)."""
    angle = rotation_angle(torch.eye(3, dtype=R.dtype, device=R.device).expand_as(R), R)
    v = torch.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], dim=-1)
    s = torch.sin(angle)
    scale = torch.where(s.abs() > 1e-9, angle / (2 * s), 0.5 + angle**2 / 12)
    return v * scale[:, None]


def pose_error(chain: KinematicChain, q: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Position (N,) metres and orientation (N,) radians errors of q (N, dof) against targets."""
    fk = chain.forward(q)
    pe = (fk.position - position).norm(dim=-1)
    oe = rotation_angle(fk.rotation, rotation) if rotation is not None else torch.zeros_like(pe)
    return pe, oe


def refine(chain: KinematicChain, q: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor | None, iterations: int, damping: float, tol: float = 1e-13) -> torch.Tensor:
    """Batched Levenberg-Marquardt: q (N, dof) -> refined q, minimum-norm steps (stay in branch).

    dq = J^T (J J^T + lambda_i I)^-1 e with e = [p* - p; log(R* R^T)] (pose) or p* - p (position).
    Each sample has its own lambda_i, starting at ``damping``: a step that does not reduce the
    error is rejected and lambda_i grows tenfold (towards small gradient steps, which is what saves
    samples near singularities); an accepted step shrinks it again.
    """
    q = q.clone()
    rows = 3 if rotation is None else 6

    def residual(fk) -> torch.Tensor:
        e = position - fk.position
        if rotation is not None:
            e = torch.cat([e, _rotation_log(rotation @ fk.rotation.transpose(-1, -2))], dim=-1)
        return e

    fkj = chain.forward_with_jacobian(q)
    e = residual(fkj)
    err = e.norm(dim=-1)
    lam = torch.full_like(err, max(damping, 1e-12))
    eye = torch.eye(rows, dtype=q.dtype, device=q.device)
    for _ in range(iterations):
        active = err > tol
        if not active.any():
            break
        J = fkj.jacobian[:, :rows]  # (N, rows, dof)
        A = J @ J.transpose(-1, -2) + lam[:, None, None] * eye
        dq = (J.transpose(-1, -2) @ torch.linalg.solve(A, e[..., None]))[..., 0]
        q_new = q + dq
        fk_new = chain.forward_with_jacobian(q_new)
        e_new = residual(fk_new)
        err_new = e_new.norm(dim=-1)
        accept = (err_new < err) & active & torch.isfinite(err_new)
        if not accept.any() and bool((lam[active] >= 1e6).all()):
            break  # every unconverged sample is stuck at maximal damping
        lam = torch.where(accept, (lam / 10).clamp_min(max(damping, 1e-12)), (lam * 10).clamp_max(1e6))
        q = torch.where(accept[:, None], q_new, q)
        fkj = type(fkj)(
            torch.where(accept[:, None], fk_new.position, fkj.position),
            torch.where(accept[:, None, None], fk_new.rotation, fkj.rotation),
            torch.where(accept[:, None, None], fk_new.jacobian, fkj.jacobian),
        )
        e = torch.where(accept[:, None], e_new, e)
        err = torch.where(accept, err_new, err)
    return q


class IKSolver:
    """Multi-solution IK for one chain from a trained inverse model (thread-safe).

    Args:
        model: trained :class:`IKGenerator` for ``chain`` (position or pose targets).
        chain: the kinematic chain (real joint limits, FK, Jacobian).
        seed: RNG seed of the latent draws (deterministic answers for equal requests).
    """

    def __init__(self, model: IKGenerator, chain: KinematicChain, seed: int = 0) -> None:
        self.model = model.eval()
        self.chain = chain
        self._lock = threading.Lock()
        self._seed = seed
        self._periodic = torch.as_tensor(chain.periodic)
        self._is_ur = chain.name == "ur3" and chain.tip_link == "tool0" and chain.base_link in ("base", "base_link") and chain.dof == 6

    def _wrapped_distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Max joint difference, modulo 2*pi for revolute joints: (..., dof), (..., dof) -> (...).

        Inputs must already be wrapped to [-pi, pi) on revolute joints (see :meth:`_wrap`), so the
        modulo reduces to min(d, 2*pi - d): no remainder on the large pairwise tensor.
        """
        d = (a - b).abs()
        d = torch.where(self._periodic, torch.minimum(d, 2 * math.pi - d), d)
        return d.amax(-1)

    def _wrap(self, q: torch.Tensor) -> torch.Tensor:
        return torch.where(self._periodic, torch.remainder(q + math.pi, 2 * math.pi) - math.pi, q)

    @torch.no_grad()
    def solve(
        self,
        position: torch.Tensor,
        rotation: torch.Tensor | None = None,
        seed: torch.Tensor | None = None,
        options: SolverOptions | None = None,
    ) -> IKResult:
        """Solve B targets.

        Args:
            position: (B, 3) metres in the chain base frame.
            rotation: (B, 3, 3) for pose targets; None for position targets.
            seed: (dof,) or (B, dof) joint values: ranks solutions and picks 2*pi copies.
            options: solver options.
        """
        opt = options or SolverOptions()
        position = torch.as_tensor(position, dtype=torch.float64)
        if position.ndim != 2 or position.shape[-1] != 3 or not torch.isfinite(position).all():
            raise ValueError(f"position must be a finite (B, 3) tensor, got shape {tuple(position.shape)}")
        B, K, dof = position.shape[0], opt.num_solutions, self.chain.dof
        if rotation is not None:
            rotation = torch.as_tensor(rotation, dtype=torch.float64)
            if rotation.shape != (B, 3, 3) or not torch.isfinite(rotation).all():
                raise ValueError(f"rotation must be a finite (B, 3, 3) tensor, got {tuple(rotation.shape)}")
        if seed is not None:
            seed = torch.as_tensor(seed, dtype=torch.float64).expand(B, dof)
            if not torch.isfinite(seed).all():
                raise ValueError("seed must be finite")
        ref = seed if seed is not None else torch.zeros(B, dof, dtype=torch.float64)
        timings = {"sample": 0.0, "refine": 0.0, "select": 0.0}
        pool_q = torch.empty(B, 0, dof, dtype=torch.float64)
        pool_pe = torch.empty(B, 0, dtype=torch.float64)
        pool_oe = torch.empty(B, 0, dtype=torch.float64)
        pool_ok = torch.empty(B, 0, dtype=torch.bool)
        S = max(opt.oversample * K, opt.min_samples)
        prev_found = torch.zeros(B, dtype=torch.long)
        for round_ in range(opt.max_rounds):
            t0 = time.perf_counter()
            with self._lock:
                gen = torch.Generator(device=self.model.device).manual_seed(self._seed + round_)
                if self.model.config.target == "pose":
                    if rotation is None:
                        # position request to a pose model: condition every sample on a random orientation
                        rand_R = quaternion_to_matrix(torch.randn(B, S, 4, generator=gen, dtype=torch.float64))
                        q = self.model.sample(position, rand_R, S, generator=gen).q.double().cpu()
                    else:
                        q = self.model.sample(position, rotation, S, generator=gen).q.double().cpu()
                else:
                    q = self.model.sample(position, None, S, generator=gen).q.double().cpu()  # (B, S, dof)
                n_rand = int(round(opt.random_fraction * S)) if opt.refine else 0
                if n_rand:
                    q[:, S - n_rand :] = self.chain.sample_configurations(B * n_rand, gen, dtype=torch.float64).reshape(B, n_rand, dof)
            t1 = time.perf_counter()
            flat_q = q.reshape(B * S, dof)
            flat_p = position[:, None].expand(B, S, 3).reshape(B * S, 3)
            flat_R = rotation[:, None].expand(B, S, 3, 3).reshape(B * S, 3, 3) if rotation is not None else None
            if opt.refine:
                flat_q = refine(self.chain, flat_q, flat_p, flat_R, opt.refine_iterations, opt.damping)
            t2 = time.perf_counter()
            flat_q, within = nearest_periodic_copy(flat_q, ref[:, None].expand(B, S, dof).reshape(B * S, dof), self.chain.lower, self.chain.upper, self.chain.periodic)
            pe, oe = pose_error(self.chain, flat_q, flat_p, flat_R)
            ok = within & torch.isfinite(flat_q).all(-1) & (pe <= opt.position_tolerance) & (oe <= opt.orientation_tolerance)
            pool_q = torch.cat([pool_q, flat_q.reshape(B, S, dof)], 1)
            pool_pe = torch.cat([pool_pe, pe.reshape(B, S)], 1)
            pool_oe = torch.cat([pool_oe, oe.reshape(B, S)], 1)
            pool_ok = torch.cat([pool_ok, ok.reshape(B, S)], 1)
            keep = self._distinct(pool_q, pool_pe, pool_ok, opt.distinct_tolerance)
            timings["sample"] += t1 - t0
            timings["refine"] += t2 - t1
            timings["select"] += time.perf_counter() - t2
            found = keep.sum(1)
            # stop when every target has K, or when a round found nothing new (the target has fewer
            # distinct solutions than asked, e.g. at most 8 for a 6-DoF UR pose)
            if (found >= K).all() or (round_ > 0 and torch.equal(found, prev_found)):
                break
            prev_found = found
        t3 = time.perf_counter()
        idx, sel_ok = self._rank(pool_q, keep, seed, K)
        sol = torch.gather(pool_q, 1, idx[..., None].expand(B, K, dof))
        pe = torch.gather(pool_pe, 1, idx)
        oe = torch.gather(pool_oe, 1, idx)
        nan = torch.full_like(pe, math.nan)
        sol = torch.where(sel_ok[..., None], sol, torch.full_like(sol, math.nan))
        branch = torch.full((B, K), -1, dtype=torch.long)
        if self._is_ur and sel_ok.any():
            branch[sel_ok] = ur_branch_ids(sol[sel_ok])
        timings["select"] += time.perf_counter() - t3
        return IKResult(sol, sel_ok, torch.where(sel_ok, pe, nan), torch.where(sel_ok, oe, nan), branch, sel_ok.sum(1), timings)

    def _distinct(self, q: torch.Tensor, err: torch.Tensor, ok: torch.Tensor, tol: float) -> torch.Tensor:
        """(B, S) mask of valid samples kept after greedy deduplication (lowest error first).

        Refined samples of one solution agree to ~1e-10, so most duplicates share a grid cell of
        size ``tol``: one pass of ``unique`` keeps the best sample per cell, and only those
        representatives (a few per target) are compared pairwise for the cells' boundaries.
        """
        B, S, dof = q.shape
        qw = self._wrap(q)
        err_key = torch.where(ok, err, torch.full_like(err, math.inf))
        flat_ok = ok.reshape(-1)
        rep = torch.zeros(B * S, dtype=torch.bool)
        if flat_ok.any():
            idx = torch.nonzero(flat_ok).flatten()
            cells = torch.floor(qw.reshape(-1, dof)[idx] / max(tol, 1e-12)).long()
            keys = torch.cat([(idx // S)[:, None], cells], dim=1)
            _, inverse = torch.unique(keys, dim=0, return_inverse=True)
            e = err_key.reshape(-1)[idx]
            best = torch.full((int(inverse.max()) + 1,), math.inf, dtype=e.dtype).scatter_reduce(0, inverse, e, reduce="amin")
            first = (e <= best[inverse])
            # one representative per cell (ties: the first index)
            cell_taken = torch.zeros_like(best, dtype=torch.bool)
            for j in torch.nonzero(first).flatten().tolist():
                c = int(inverse[j])
                if not cell_taken[c]:
                    cell_taken[c] = True
                    rep[idx[j]] = True
        rep = rep.reshape(B, S)
        order = torch.argsort(torch.where(rep, err_key, torch.full_like(err_key, math.inf)), dim=1)
        reps = torch.gather(rep, 1, order)
        n = int(reps.sum(1).max()) if reps.any() else 0  # representatives sort first
        kept = torch.zeros(B, S, dtype=torch.bool)
        if n:
            qs = torch.gather(qw, 1, order[:, :n, None].expand(B, n, dof))
            dist = self._wrapped_distance(qs[:, :, None], qs[:, None, :])  # (B, n, n)
            for k in range(n):
                dup = ((dist[:, k] <= tol) & kept[:, :n]).any(-1)
                kept[:, k] = reps[:, k] & ~dup
        keep = torch.zeros_like(kept)
        keep.scatter_(1, order, kept)
        return keep

    def _rank(self, q: torch.Tensor, keep: torch.Tensor, seed: torch.Tensor | None, K: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices (B, K) into the pool and their validity: by seed distance, else farthest-point order."""
        B, S, _ = q.shape
        if seed is not None:
            d = (q - seed[:, None]).norm(dim=-1)
            d = torch.where(keep, d, torch.full_like(d, math.inf))
            idx = torch.argsort(d, dim=1)[:, :K]
            return idx, torch.gather(keep, 1, idx)
        qw = self._wrap(q)
        # farthest point: start at the first kept sample, then repeatedly the one farthest from the chosen
        chosen = torch.zeros(B, K, dtype=torch.long)
        ok = torch.zeros(B, K, dtype=torch.bool)
        first = torch.argmax(keep.to(torch.int8), dim=1)
        min_d = torch.full((B, S), math.inf, dtype=torch.float64)
        cur = first
        avail = keep.clone()
        for k in range(K):
            has = avail.any(1)
            if k > 0:
                cur = torch.argmax(torch.where(avail, min_d, torch.full_like(min_d, -1.0)), dim=1)
            chosen[:, k] = cur
            ok[:, k] = has & avail[torch.arange(B), cur]
            avail[torch.arange(B), cur] = False
            d = self._wrapped_distance(qw, qw[torch.arange(B), cur][:, None])
            min_d = torch.minimum(min_d, d)
        return chosen, ok

