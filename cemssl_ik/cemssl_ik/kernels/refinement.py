"""Refinement of one sample (Levenberg-Marquardt, with Newton steps along the valley of a
near-singular Jacobian), wrapping to the 2*pi copy nearest a reference, the final check, and the
start points of near-singular solutions' partners."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .jit import _jit, _jit_par
from .linalg import _cholesky_solve, _fk, _jacobian, _linearize, _lm_step, _relative_rotation, _residual, _weakest_direction

#: valley steps (see ``_valley_step``) only where the Jacobian's sigma_min < VALLEY_RATIO * sigma_max
#: (UR3 solutions: ~1e-4 within 1e-3 rad or 1 mm of a singularity, median 0.03 elsewhere) ...
VALLEY_RATIO = 0.01
#: ... and the residual norm is below VALLEY_ERROR (metres / radians): elsewhere a slow LM
#: iteration is not crawling along a singular valley, and the step would only cost time
VALLEY_ERROR = 0.05


@_jit
def _valley_step(q, pt, Rt, rows, C, err, e, J, max_step, sweeps, p, R, axes, origins, tmp, qn, Jn, en):
    """One Newton step along the weakest joint direction, then back onto the valley.

    Returns (status, error): 0 the step lowered the error, 1 it did not, 2 the Jacobian is not
    near-singular (sigma_min >= VALLEY_RATIO sigma_max; nothing tried).

    Near a singularity the near-solutions form a narrow curved valley whose floor rises by
    only ~sigma_min per radian: LM steps along it leave the valley (error ~ curvature * step^2)
    and are rejected, so LM crawls.  Here the step along the weakest right singular vector v
    is the Newton step of the floor's residual (u . e / sigma_min), and the other directions
    are then solved again (a few Gauss-Newton sweeps that keep v fixed), so only the floor's
    residual decides whether the step is taken (halved up to 6 times otherwise).
    """
    dof = q.shape[0]
    m = dof - 1
    W, V, basis, v = np.empty((rows, dof)), np.empty((dof, dof)), np.empty((m, dof)), np.empty(dof)
    s_min, s_max, k = _weakest_direction(J, rows, dof, W, V, basis, v)
    if not (s_min > 1e-14 * s_max and s_min < VALLEY_RATIO * s_max):
        return 2, err  # not near a singularity
    g = 0.0  # u . e, u = J v / sigma_min
    for a in range(rows):
        g += W[a, k] * e[a]
    dt = g / (s_min * s_min)
    if abs(dt) > max_step:
        dt = max_step if dt > 0 else -max_step
    Bm, G, L, z = np.empty((rows, m)), np.empty((m, m)), np.empty((m, m)), np.empty(m)
    for _ in range(6):
        for k in range(dof):
            qn[k] = q[k] + dt * v[k]
        for _s in range(sweeps):
            # Gauss-Newton within the hyperplane v . (q - qn) = 0 (basis: the other singular vectors)
            _linearize(qn, C, pt, Rt, rows, p, R, axes, origins, tmp, en, Jn)
            for a in range(rows):
                for i in range(m):
                    acc = 0.0
                    for k in range(dof):
                        acc += Jn[a, k] * basis[i, k]
                    Bm[a, i] = acc
            if not _cholesky_solve(Bm, en, rows, m, G, L, z):
                break
            for i in range(m):
                for k in range(dof):
                    qn[k] += z[i] * basis[i, k]
        _fk(qn, C, p, R, axes, origins, tmp)
        err_n = _residual(p, R, pt, Rt, rows, en)
        if err_n < err:
            for k in range(dof):
                q[k] = qn[k]
            return 0, err_n
        dt *= 0.5
    return 1, err

@_jit
def _refine_one(q, pt, Rt, rows, C, o):
    """Levenberg-Marquardt on one sample in place (minimum-norm steps dq = J^T (J J^T + lam I)^-1 e).

    Where an iteration makes little progress (a rejected step, or less than halving the error)
    on a square or over-determined system, a :func:`_valley_step` is tried as well.
    """
    dof = q.shape[0]
    p, R = np.empty(3), np.empty((3, 3))
    p2, R2 = np.empty(3), np.empty((3, 3))
    axes, origins = np.empty((dof, 3)), np.empty((dof, 3))
    axes2, origins2 = np.empty((dof, 3)), np.empty((dof, 3))
    tmp, J, J2 = np.empty((3, 3)), np.empty((6, dof)), np.empty((6, dof))
    e, e2, y = np.empty(6), np.empty(6), np.empty(6)
    A, L = np.empty((6, 6)), np.empty((6, 6))
    dq, qn = np.empty(dof), np.empty(dof)
    err = _linearize(q, C, pt, Rt, rows, p, R, axes, origins, tmp, e, J)
    lam = max(o.initial_damping, 1e-12)
    lam_min = max(o.damping, 1e-12)
    valley = rows >= dof and o.singular_steps
    max_step, give_up_after, give_up_error = o.max_step, o.give_up_after, o.give_up_error
    failed = 0
    for it in range(o.iterations):
        if not err > o.tol:  # converged (or NaN: nothing to do)
            break
        if give_up_after >= 0 and it >= give_up_after and not err < give_up_error:
            break
        ok = _lm_step(J, e, rows, dof, lam, A, L, y, dq)
        err2 = math.inf
        if ok:
            big = 0.0
            for k in range(dof):
                big = max(big, abs(dq[k]))
            scale = max_step / big if big > max_step else 1.0
            for k in range(dof):
                qn[k] = q[k] + dq[k] * scale
            _fk(qn, C, p2, R2, axes2, origins2, tmp)
            err2 = _residual(p2, R2, pt, Rt, rows, e2)
            ok = err2 < err  # False for NaN
        if valley and err < VALLEY_ERROR and not err2 < 0.5 * err:
            status, err_v = _valley_step(q, pt, Rt, rows, C, err, e, J, max_step, 3, p2, R2, axes2, origins2, tmp, qn, J2, e2)
            failed += status == 1
            # not near a singularity this close to convergence, or repeated failures: this
            # sample has no valley to walk, stop paying for the SVD
            valley = status != 2 and failed < 4
            moved = status == 0
            if moved:
                err = _linearize(q, C, pt, Rt, rows, p, R, axes, origins, tmp, e, J)
                lam = lam_min
                continue
        if ok:
            for k in range(dof):
                q[k] = qn[k]
            p, p2 = p2, p
            R, R2 = R2, R
            axes, axes2 = axes2, axes
            origins, origins2 = origins2, origins
            e, e2 = e2, e
            err = err2
            _jacobian(p, axes, origins, C.revolute, J)
            lam = max(lam / 10.0, lam_min)
        else:
            if lam >= 1e6:
                break  # stuck at maximal damping
            lam = min(lam * 10.0, 1e6)
    return err

@_jit
def _wrap_check(q, ref, lower, upper, periodic, slack):
    """Move periodic joints to the 2*pi copy nearest ref within limits (in place); True if all within.

    Closed form per joint: the copies q + 2 pi k lie within [lower, upper] for k_lo <= k <= k_hi,
    and the distance to ref is convex in k, so the best k is round((ref - q) / 2 pi) clamped to
    [k_lo, k_hi] (any seed magnitude; the nearest copy overall where no copy is within limits).
    """
    two_pi = 2.0 * math.pi
    within = True
    for k in range(q.shape[0]):
        v = q[k]
        if periodic[k] and math.isfinite(v):
            # np.floor / np.ceil stay float (math.floor's int64 overflows for far seeds)
            n = np.floor((ref[k] - v) / two_pi + 0.5)
            n_lo = np.ceil((lower[k] - slack - v) / two_pi)
            n_hi = np.floor((upper[k] + slack - v) / two_pi)
            if n_lo <= n_hi:
                n = min(max(n, n_lo), n_hi)
            v = v + two_pi * n
            q[k] = v
        if not (v >= lower[k] - slack and v <= upper[k] + slack):
            within = False
    return within

@_jit
def _sample(i, q, pt, Rt, ref, rows, C, o, out_q, out_pe, out_oe, out_ok):
    dof = q.shape[1]
    qi = np.empty(dof)
    for k in range(dof):
        qi[k] = q[i, k]
    Rti = Rt[i]
    if o.refine:
        _refine_one(qi, pt[i], Rti, rows, C, o)
    within = _wrap_check(qi, ref[i], C.lower, C.upper, C.periodic, 1e-9)
    finite = True
    for k in range(dof):
        out_q[i, k] = qi[k]
        if not math.isfinite(qi[k]):
            finite = False
    if not finite:
        out_pe[i], out_oe[i], out_ok[i] = math.inf, math.inf, False
        return
    p, R = np.empty(3), np.empty((3, 3))
    axes, origins, tmp = np.empty((dof, 3)), np.empty((dof, 3)), np.empty((3, 3))
    _fk(qi, C, p, R, axes, origins, tmp)
    dx, dy, dz = p[0] - pt[i, 0], p[1] - pt[i, 1], p[2] - pt[i, 2]
    pe = math.sqrt(dx * dx + dy * dy + dz * dz)
    oe = _relative_rotation(Rti, R)[3] if rows == 6 else 0.0  # angle of R* R^T = angle of R^T R*
    out_pe[i], out_oe[i] = pe, oe
    out_ok[i] = within and pe <= o.position_tolerance and oe <= o.orientation_tolerance

@_jit
def _refine_check_serial(q, pt, Rt, ref, rows, C, o, out_q, out_pe, out_oe, out_ok):
    for i in range(q.shape[0]):
        _sample(i, q, pt, Rt, ref, rows, C, o, out_q, out_pe, out_oe, out_ok)

@_jit_par
def _refine_check_parallel(q, pt, Rt, ref, rows, C, o, out_q, out_pe, out_oe, out_ok):
    for i in nb.prange(q.shape[0]):
        _sample(i, q, pt, Rt, ref, rows, C, o, out_q, out_pe, out_oe, out_ok)

@_jit
def _partners_one(q, pt, Rt, rows, C, ratio, h, out):
    """Start points for the solutions that pair with the solution ``q`` at a nearby singularity.

    Near a fold (two roots that merge at the singularity: the shoulder or elbow pairs) the
    residual along the weakest direction v is about g(s) = -sigma s + c s^2 / 2, so the other
    root lies at s = 2 sigma / c; ``c`` comes from one residual evaluation at s = h.  Only for
    solutions with sigma_min < ``ratio`` * sigma_max.  Writes out[0] and returns 1, else 0.
    """
    dof = q.shape[0]
    p, R, tmp = np.empty(3), np.empty((3, 3)), np.empty((3, 3))
    axes, origins = np.empty((dof, 3)), np.empty((dof, 3))
    J, e = np.empty((6, dof)), np.empty(6)
    _fk(q, C, p, R, axes, origins, tmp)
    _jacobian(p, axes, origins, C.revolute, J)
    W, V, basis, v = np.empty((rows, dof)), np.empty((dof, dof)), np.empty((dof - 1, dof)), np.empty(dof)
    sigma, s_max, kk = _weakest_direction(J, rows, dof, W, V, basis, v)
    if not sigma < ratio * s_max:
        return 0
    for k in range(dof):
        out[0, k] = q[k] + h * v[k]
    _fk(out[0], C, p, R, axes, origins, tmp)
    _residual(p, R, pt, Rt, rows, e)
    g0 = 0.0  # u . e at q (a converged solution: ~0, kept for accuracy)
    _fk(q, C, p, R, axes, origins, tmp)
    e0 = np.empty(6)
    _residual(p, R, pt, Rt, rows, e0)
    gh = 0.0
    for a in range(rows):
        u = W[a, kk] / sigma if sigma > 0 else 0.0
        gh += u * e[a]
        g0 += u * e0[a]
    c = 2.0 * (gh - g0 + sigma * h) / (h * h)
    if not abs(c) > 1e-12:
        return 0
    step = 2.0 * sigma / c
    if abs(step) > 0.5:
        step = 0.5 if step > 0 else -0.5
    for k in range(dof):
        out[0, k] = q[k] + step * v[k]
    return 1

@_jit
def _partners(q, pt, Rt, rows, C, ratio, h, out, count):
    for i in range(q.shape[0]):
        count[i] = _partners_one(q[i], pt[i], Rt[i], rows, C, ratio, h, out[i])
