"""The batched torch implementation of refinement (used by ``IKSolver(backend='torch')`` and where numba is missing)."""

from __future__ import annotations

import math

import torch

from ..kinematics.chain import KinematicChain
from ..kinematics.transforms import rotation_angle, rotation_log

__all__ = ["pose_error", "refine"]


def pose_error(chain: KinematicChain, q: torch.Tensor, position: torch.Tensor, rotation: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Position (N,) metres and orientation (N,) radians errors of q (N, dof) against targets."""
    fk = chain.forward(q)
    pe = (fk.position - position).norm(dim=-1)
    oe = rotation_angle(fk.rotation, rotation) if rotation is not None else torch.zeros_like(pe)
    return pe, oe


def refine(
    chain: KinematicChain,
    q: torch.Tensor,
    position: torch.Tensor,
    rotation: torch.Tensor | None,
    iterations: int,
    damping: float,
    tol: float = 1e-13,
    give_up_after: int | None = None,
    give_up_error: float = 1e-3,
    initial_damping: float | None = None,
    max_step: float = math.inf,
) -> torch.Tensor:
    """Batched Levenberg-Marquardt: q (N, dof) -> refined q, minimum-norm steps (stay in branch).

    dq = J^T (J J^T + lambda_i I)^-1 e with e = [p* - p; log(R* R^T)] (pose) or p* - p (position).
    Each sample has its own lambda_i, starting at ``damping``: a step that does not reduce the
    error is rejected and lambda_i grows tenfold (towards small gradient steps, which is what saves
    samples near singularities); an accepted step shrinks it again.

    Only unconverged samples are iterated (the active set shrinks as samples reach ``tol``), and
    after ``give_up_after`` iterations samples still farther than ``give_up_error`` (residual norm)
    are abandoned: LM converges quadratically once in a solution's basin, so such samples are
    stalled near a singularity or a joint-space saddle and would only keep the batch busy.  Their
    last iterate is returned (the caller's tolerance filter drops it).
    """
    out = q.clone()
    rows = 3 if rotation is None else 6

    def residual(fk, p, R) -> torch.Tensor:
        e = p - fk.position
        if R is not None:
            e = torch.cat([e, rotation_log(R @ fk.rotation.transpose(-1, -2))], dim=-1)
        return e

    idx = torch.arange(q.shape[0], device=q.device)
    qa, pa, Ra = out, position, rotation
    fkj = chain.forward_with_jacobian(qa)
    e = residual(fkj, pa, Ra)
    err = e.norm(dim=-1)
    lam = torch.full_like(err, max(damping if initial_damping is None else initial_damping, 1e-12))
    eye = torch.eye(rows, dtype=q.dtype, device=q.device)
    for it in range(iterations):
        active = err > tol
        if give_up_after is not None and it >= give_up_after:
            active &= err < give_up_error
        n_active = int(active.sum())
        if n_active == 0:
            break
        if n_active < qa.shape[0]:  # compact: write finished samples back, iterate the rest
            done = ~active
            out[idx[done]] = qa[done]
            keep = torch.nonzero(active).flatten()
            idx, qa, pa, e, err, lam = idx[keep], qa[keep], pa[keep], e[keep], err[keep], lam[keep]
            Ra = Ra[keep] if Ra is not None else None
            fkj = type(fkj)(fkj.position[keep], fkj.rotation[keep], fkj.jacobian[keep])
        J = fkj.jacobian[:, :rows]  # (n, rows, dof)
        Jt = J.transpose(-1, -2)
        A = torch.baddbmm(lam[:, None, None] * eye, J, Jt)
        L, info = torch.linalg.cholesky_ex(A)
        dq = (Jt @ torch.cholesky_solve(e[..., None], L))[..., 0]
        if max_step < math.inf:
            dq = dq * (max_step / dq.abs().amax(-1, keepdim=True).clamp_min(max_step))
        q_new = qa + dq
        fk_new = chain.forward_with_jacobian(q_new)
        e_new = residual(fk_new, pa, Ra)
        err_new = e_new.norm(dim=-1)
        accept = (err_new < err) & (info == 0) & torch.isfinite(err_new)
        if not bool(accept.any()) and bool((lam >= 1e6).all()):
            break  # every unconverged sample is stuck at maximal damping
        lam = torch.where(accept, (lam / 10).clamp_min(max(damping, 1e-12)), (lam * 10).clamp_max(1e6))
        qa = torch.where(accept[:, None], q_new, qa)
        fkj = type(fkj)(
            torch.where(accept[:, None], fk_new.position, fkj.position),
            torch.where(accept[:, None, None], fk_new.rotation, fkj.rotation),
            torch.where(accept[:, None, None], fk_new.jacobian, fkj.jacobian),
        )
        e = torch.where(accept[:, None], e_new, e)
        err = torch.where(accept, err_new, err)
    if qa is not out:  # (no iteration ran: qa is still out itself)
        out[idx] = qa
    return out
