"""Compiled (numba) kernels of the solver's hot path: LM refinement, wrapping, filtering, dedupe, ranking.

The torch implementation in :mod:`cemssl_ik.solver` iterates a whole batch in lock-step, so every
Levenberg-Marquardt iteration pays per-op dispatch for a few (N, 6, 6) tensors, and samples that
converged early or will never converge ride along until the batch's active set shrinks.  Here each
sample is solved by its own scalar loop (FK, geometric Jacobian, Cholesky of the 3x3 / 6x6 normal
matrix, in registers and small scratch arrays) and stops the moment it converges or stalls; the
sample loop runs in parallel over the cores (``prange``) for large batches and serially for small
ones (latency: no thread start-up).

Everything is float64 and mirrors the torch path's semantics (see :func:`cemssl_ik.solver.refine`,
:func:`cemssl_ik.kinematics.limits.nearest_periodic_copy`); ``test_kernels.py`` checks the two
against each other.  numba is a pinned dependency; without it (``AVAILABLE`` False) the solver
falls back to the torch path.

Chain constants come from :func:`chain_arrays` (the folded segments of a
:class:`~cemssl_ik.kinematics.chain.KinematicChain`).
"""

from __future__ import annotations

import math
import threading

import numpy as np

try:  # numba is a pinned requirement; the torch path remains usable without it
    import numba as nb

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    nb = None
    AVAILABLE = False

__all__ = ["AVAILABLE", "chain_arrays", "refine_check", "distinct_representatives", "select"]

#: batches of fewer samples run on the calling thread.  In isolation two cores already halve a
#: 64-sample batch, but in the service, where client processes and executor threads compete for
#: the same cores, parallel regions for small batches made single requests slower (K = 16 p50
#: 10.5 -> 12.4 ms with 32 here, measured with `cemssl-ik bench service --k 1 16 --clients 1`)
SERIAL_BELOW = 256

# Parallel kernels use all cores anyway, and numba's fallback "workqueue" threading layer (used
# where neither TBB nor OpenMP is available) must not be entered from two threads at once.
_PARALLEL_LOCK = threading.Lock()


def chain_arrays(chain) -> tuple[np.ndarray, ...]:
    """Kernel constants of a chain: (R_o, R_oK, R_oK2, t_o, R_oa, revolute, R_tip, t_tip, lower, upper, periodic)."""
    s = chain.segment_arrays()
    c = np.ascontiguousarray
    return (
        s["R_o"], s["R_oK"], s["R_oK2"], s["t_o"], s["R_oa"], s["revolute"] > 0.5, s["R_tip"], s["t_tip"],
        c(chain.lower, dtype=np.float64), c(chain.upper, dtype=np.float64), c(chain.periodic, dtype=np.bool_),
    )


if AVAILABLE:
    _jit = nb.njit(cache=True, nogil=True, fastmath=False)
    _jit_par = nb.njit(cache=True, nogil=True, fastmath=False, parallel=True)

    @_jit
    def _rmul(R, M):
        """R <- R @ M for 3x3 matrices, row by row (each row only reads itself)."""
        for a in range(3):
            r0, r1, r2 = R[a, 0], R[a, 1], R[a, 2]
            for b in range(3):
                R[a, b] = r0 * M[0, b] + r1 * M[1, b] + r2 * M[2, b]

    @_jit
    def _fk(q, R_o, R_oK, R_oK2, t_o, R_oa, rev, R_tip, t_tip, p, R, axes, origins, tmp):
        """Tip position p (3,) and rotation R (3, 3) of q; joint axes / origins (dof, 3) in the base frame."""
        dof = q.shape[0]
        for a in range(3):
            p[a] = t_o[0, a]
            for b in range(3):
                R[a, b] = 1.0 if a == b else 0.0
        for i in range(dof):
            if i > 0:
                for a in range(3):
                    p[a] += R[a, 0] * t_o[i, 0] + R[a, 1] * t_o[i, 1] + R[a, 2] * t_o[i, 2]
            for a in range(3):
                axes[i, a] = R[a, 0] * R_oa[i, 0] + R[a, 1] * R_oa[i, 1] + R[a, 2] * R_oa[i, 2]
                origins[i, a] = p[a]
            if rev[i]:
                s = math.sin(q[i])
                omc = 1.0 - math.cos(q[i])
                for a in range(3):
                    for b in range(3):
                        tmp[a, b] = R_o[i, a, b] + s * R_oK[i, a, b] + omc * R_oK2[i, a, b]
            else:
                for a in range(3):
                    p[a] += axes[i, a] * q[i]
                    for b in range(3):
                        tmp[a, b] = R_o[i, a, b]
            _rmul(R, tmp)
        for a in range(3):
            p[a] += R[a, 0] * t_tip[0] + R[a, 1] * t_tip[1] + R[a, 2] * t_tip[2]
        _rmul(R, R_tip)

    @_jit
    def _jacobian(p, axes, origins, rev, J):
        """Geometric Jacobian (6, dof) at the tip origin from _fk's joint axes and origins."""
        for i in range(axes.shape[0]):
            ax, ay, az = axes[i, 0], axes[i, 1], axes[i, 2]
            if rev[i]:
                dx, dy, dz = p[0] - origins[i, 0], p[1] - origins[i, 1], p[2] - origins[i, 2]
                J[0, i] = ay * dz - az * dy
                J[1, i] = az * dx - ax * dz
                J[2, i] = ax * dy - ay * dx
                J[3, i], J[4, i], J[5, i] = ax, ay, az
            else:
                J[0, i], J[1, i], J[2, i] = ax, ay, az
                J[3, i], J[4, i], J[5, i] = 0.0, 0.0, 0.0

    @_jit
    def _relative_rotation(A, B):
        """(vx, vy, vz, angle) of A B^T: v = 2 sin(angle) * axis, angle by atan2 (accurate near 0 and pi)."""
        m00 = A[0, 0] * B[0, 0] + A[0, 1] * B[0, 1] + A[0, 2] * B[0, 2]
        m11 = A[1, 0] * B[1, 0] + A[1, 1] * B[1, 1] + A[1, 2] * B[1, 2]
        m22 = A[2, 0] * B[2, 0] + A[2, 1] * B[2, 1] + A[2, 2] * B[2, 2]
        m21 = A[2, 0] * B[1, 0] + A[2, 1] * B[1, 1] + A[2, 2] * B[1, 2]
        m12 = A[1, 0] * B[2, 0] + A[1, 1] * B[2, 1] + A[1, 2] * B[2, 2]
        m02 = A[0, 0] * B[2, 0] + A[0, 1] * B[2, 1] + A[0, 2] * B[2, 2]
        m20 = A[2, 0] * B[0, 0] + A[2, 1] * B[0, 1] + A[2, 2] * B[0, 2]
        m10 = A[1, 0] * B[0, 0] + A[1, 1] * B[0, 1] + A[1, 2] * B[0, 2]
        m01 = A[0, 0] * B[1, 0] + A[0, 1] * B[1, 1] + A[0, 2] * B[1, 2]
        vx, vy, vz = m21 - m12, m02 - m20, m10 - m01
        return vx, vy, vz, math.atan2(math.sqrt(vx * vx + vy * vy + vz * vz), m00 + m11 + m22 - 1.0)

    @_jit
    def _residual(p, R, pt, Rt, rows, e):
        """e = [p* - p; log(R* R^T)] (rows = 6) or p* - p (rows = 3); returns |e|."""
        e[0], e[1], e[2] = pt[0] - p[0], pt[1] - p[1], pt[2] - p[2]
        if rows == 6:
            vx, vy, vz, angle = _relative_rotation(Rt, R)  # log(R* R^T)
            s = math.sin(angle)
            scale = angle / (2.0 * s) if abs(s) > 1e-9 else 0.5 + angle * angle / 12.0
            e[3], e[4], e[5] = vx * scale, vy * scale, vz * scale
        acc = 0.0
        for r in range(rows):
            acc += e[r] * e[r]
        return math.sqrt(acc)

    @_jit
    def _refine_one(q, pt, Rt, rows, C, iterations, damping, initial_damping, tol, give_up_after, give_up_error, max_step):
        """Levenberg-Marquardt on one sample in place (minimum-norm steps dq = J^T (J J^T + lam I)^-1 e)."""
        R_o, R_oK, R_oK2, t_o, R_oa, rev, R_tip, t_tip = C
        dof = q.shape[0]
        p, R = np.empty(3), np.empty((3, 3))
        p2, R2 = np.empty(3), np.empty((3, 3))
        axes, origins = np.empty((dof, 3)), np.empty((dof, 3))
        axes2, origins2 = np.empty((dof, 3)), np.empty((dof, 3))
        tmp, J = np.empty((3, 3)), np.empty((6, dof))
        e, e2, y = np.empty(6), np.empty(6), np.empty(6)
        A, L = np.empty((6, 6)), np.empty((6, 6))
        dq, qn = np.empty(dof), np.empty(dof)
        _fk(q, R_o, R_oK, R_oK2, t_o, R_oa, rev, R_tip, t_tip, p, R, axes, origins, tmp)
        err = _residual(p, R, pt, Rt, rows, e)
        _jacobian(p, axes, origins, rev, J)
        lam = max(initial_damping, 1e-12)
        lam_min = max(damping, 1e-12)
        for it in range(iterations):
            if not err > tol:  # converged (or NaN: nothing to do)
                break
            if give_up_after >= 0 and it >= give_up_after and not err < give_up_error:
                break
            # A = J J^T + lam I (rows x rows), Cholesky A = L L^T
            ok = True
            for a in range(rows):
                for b in range(a + 1):
                    acc = 0.0
                    for k in range(dof):
                        acc += J[a, k] * J[b, k]
                    A[a, b] = acc
                A[a, a] += lam
            for a in range(rows):
                for b in range(a + 1):
                    acc = A[a, b]
                    for k in range(b):
                        acc -= L[a, k] * L[b, k]
                    if a == b:
                        if not acc > 0.0:
                            ok = False
                            break
                        L[a, a] = math.sqrt(acc)
                    else:
                        L[a, b] = acc / L[b, b]
                if not ok:
                    break
            if ok:
                for a in range(rows):  # L z = e
                    acc = e[a]
                    for k in range(a):
                        acc -= L[a, k] * y[k]
                    y[a] = acc / L[a, a]
                for a in range(rows - 1, -1, -1):  # L^T y = z
                    acc = y[a]
                    for k in range(a + 1, rows):
                        acc -= L[k, a] * y[k]
                    y[a] = acc / L[a, a]
                big = 0.0
                for k in range(dof):
                    acc = 0.0
                    for a in range(rows):
                        acc += J[a, k] * y[a]
                    dq[k] = acc
                    big = max(big, abs(acc))
                scale = max_step / big if big > max_step else 1.0
                for k in range(dof):
                    qn[k] = q[k] + dq[k] * scale
                _fk(qn, R_o, R_oK, R_oK2, t_o, R_oa, rev, R_tip, t_tip, p2, R2, axes2, origins2, tmp)
                err2 = _residual(p2, R2, pt, Rt, rows, e2)
                ok = err2 < err  # False for NaN
            if ok:
                for k in range(dof):
                    q[k] = qn[k]
                p, p2 = p2, p
                R, R2 = R2, R
                axes, axes2 = axes2, axes
                origins, origins2 = origins2, origins
                e, e2 = e2, e
                err = err2
                _jacobian(p, axes, origins, rev, J)
                lam = max(lam / 10.0, lam_min)
            else:
                if lam >= 1e6:
                    break  # stuck at maximal damping
                lam = min(lam * 10.0, 1e6)
        return err

    @_jit
    def _wrap_check(q, ref, lower, upper, periodic, slack):
        """Move periodic joints to the 2*pi copy nearest ref within limits (in place); True if all within."""
        two_pi = 2.0 * math.pi
        within = True
        for k in range(q.shape[0]):
            v = q[k]
            if periodic[k]:
                nearest = v + two_pi * math.floor((ref[k] - v) / two_pi + 0.5)
                best, best_d = nearest, math.inf
                if nearest >= lower[k] - slack and nearest <= upper[k] + slack:
                    best_d = abs(nearest - ref[k])
                for shift in (-two_pi, two_pi):
                    cand = nearest + shift
                    if cand >= lower[k] - slack and cand <= upper[k] + slack:
                        d = abs(cand - ref[k])
                        if d < best_d:
                            best, best_d = cand, d
                v = best
                q[k] = v
            if not (v >= lower[k] - slack and v <= upper[k] + slack):
                within = False
        return within

    @_jit
    def _sample(i, q, pt, Rt, ref, rows, C, L, opts, out_q, out_pe, out_oe, out_ok):
        iterations, give_up_after = int(opts[0]), int(opts[1])
        damping, initial_damping, tol, give_up_error, max_step, ptol, otol, refine = opts[2], opts[3], opts[4], opts[5], opts[6], opts[7], opts[8], opts[9]
        R_o, R_oK, R_oK2, t_o, R_oa, rev, R_tip, t_tip = C
        lower, upper, periodic = L
        dof = q.shape[1]
        qi = np.empty(dof)
        for k in range(dof):
            qi[k] = q[i, k]
        Rti = Rt[i]
        if refine > 0.0:
            _refine_one(qi, pt[i], Rti, rows, C, iterations, damping, initial_damping, tol, give_up_after, give_up_error, max_step)
        within = _wrap_check(qi, ref[i], lower, upper, periodic, 1e-9)
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
        _fk(qi, R_o, R_oK, R_oK2, t_o, R_oa, rev, R_tip, t_tip, p, R, axes, origins, tmp)
        dx, dy, dz = p[0] - pt[i, 0], p[1] - pt[i, 1], p[2] - pt[i, 2]
        pe = math.sqrt(dx * dx + dy * dy + dz * dz)
        oe = _relative_rotation(Rti, R)[3] if rows == 6 else 0.0  # angle of R* R^T = angle of R^T R*
        out_pe[i], out_oe[i] = pe, oe
        out_ok[i] = within and pe <= ptol and oe <= otol

    @_jit
    def _refine_check_serial(q, pt, Rt, ref, rows, C, L, opts, out_q, out_pe, out_oe, out_ok):
        for i in range(q.shape[0]):
            _sample(i, q, pt, Rt, ref, rows, C, L, opts, out_q, out_pe, out_oe, out_ok)

    @_jit_par
    def _refine_check_parallel(q, pt, Rt, ref, rows, C, L, opts, out_q, out_pe, out_oe, out_ok):
        for i in nb.prange(q.shape[0]):
            _sample(i, q, pt, Rt, ref, rows, C, L, opts, out_q, out_pe, out_oe, out_ok)

    @_jit
    def _joint_distance(qa, qb, periodic):
        """Max over joints of |qa - qb|, modulo 2*pi for periodic joints."""
        two_pi = 2.0 * math.pi
        best = 0.0
        for k in range(qa.shape[0]):
            d = abs(qa[k] - qb[k])
            if periodic[k]:
                d = d % two_pi
                d = min(d, two_pi - d)
            best = max(best, d)
        return best

    @_jit
    def _representatives_one(b, q, err, ok, periodic, tol, rep, count):
        """Greedy clustering of target b's valid samples, lowest error first: rep[b, s] marks the
        first (best) sample of each cluster, count[b, s] its members; returns the singletons."""
        S = q.shape[1]
        order = np.argsort(err[b])  # inf (invalid) last
        reps = np.empty(S, dtype=np.int64)
        n = 0
        for j in range(S):
            s = order[j]
            if not ok[b, s]:
                continue
            hit = -1
            for r in range(n):
                if _joint_distance(q[b, s], q[b, reps[r]], periodic) <= tol:
                    hit = reps[r]
                    break
            if hit >= 0:
                count[b, hit] += 1
            else:
                reps[n] = s
                n += 1
                rep[b, s] = True
                count[b, s] = 1
        singles = 0
        for r in range(n):
            if count[b, reps[r]] == 1:
                singles += 1
        return singles

    @_jit_par
    def _representatives(q, err, ok, periodic, tol, rep, count, singletons):
        for b in nb.prange(q.shape[0]):
            singletons[b] = _representatives_one(b, q, err, ok, periodic, tol, rep, count)

    @_jit
    def _select_one(b, q, rep, seed, has_seed, periodic, K, chosen, valid):
        S, dof = q.shape[1], q.shape[2]
        cand = np.empty(S, dtype=np.int64)
        n = 0
        for s in range(S):
            if rep[b, s]:
                cand[n] = s
                n += 1
        if n == 0:
            return
        if has_seed:  # nearest the seed (Euclidean joint distance) first
            dist = np.empty(n)
            for j in range(n):
                acc = 0.0
                for k in range(dof):
                    d = q[b, cand[j], k] - seed[b, k]
                    acc += d * d
                dist[j] = acc
            order = np.argsort(dist, kind="mergesort")
            for j in range(min(K, n)):
                chosen[b, j] = cand[order[j]]
                valid[b, j] = True
            return
        # farthest-point order from the first candidate: most diverse first
        min_d = np.full(n, math.inf)
        taken = np.zeros(n, dtype=np.bool_)
        cur = 0
        for j in range(min(K, n)):
            chosen[b, j] = cand[cur]
            valid[b, j] = True
            taken[cur] = True
            nxt, far = -1, -1.0
            for m in range(n):
                if taken[m]:
                    continue
                d = _joint_distance(q[b, cand[m]], q[b, cand[cur]], periodic)
                if d < min_d[m]:
                    min_d[m] = d
                if min_d[m] > far:
                    far, nxt = min_d[m], m
            if nxt < 0:
                break
            cur = nxt

    @_jit_par
    def _select(q, rep, seed, has_seed, periodic, K, chosen, valid):
        for b in nb.prange(q.shape[0]):
            _select_one(b, q, rep, seed, has_seed, periodic, K, chosen, valid)


def refine_check(consts, q, position, rotation, reference, opts) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Refine (optional), wrap to the copy nearest ``reference`` within limits, and check N samples.

    Args:
        consts: :func:`chain_arrays` of the chain.
        q: (N, dof) float64 start joint values.
        position: (N, 3) targets; rotation: (N, 3, 3) or None (position targets).
        reference: (N, dof) seeds for the 2*pi copies.
        opts: sequence (iterations, give_up_after (-1: never), damping, initial_damping, tol,
            give_up_error, max_step, position_tolerance, orientation_tolerance, refine (0/1)).

    Returns:
        (q, position_error, orientation_error, ok), ok = in limits, finite and within tolerances.
    """
    q = np.ascontiguousarray(q, dtype=np.float64)
    N = q.shape[0]
    pt = np.ascontiguousarray(position, dtype=np.float64)
    rows = 3 if rotation is None else 6
    Rt = np.zeros((N, 3, 3)) if rotation is None else np.ascontiguousarray(rotation, dtype=np.float64)
    if rotation is None:
        Rt[:] = np.eye(3)
    ref = np.ascontiguousarray(reference, dtype=np.float64)
    out_q, out_pe, out_oe, out_ok = np.empty_like(q), np.empty(N), np.empty(N), np.empty(N, dtype=np.bool_)
    C, L = tuple(consts[:8]), tuple(consts[8:])
    o = np.asarray(opts, dtype=np.float64)
    if N < SERIAL_BELOW:
        _refine_check_serial(q, pt, Rt, ref, rows, C, L, o, out_q, out_pe, out_oe, out_ok)
    else:
        with _PARALLEL_LOCK:
            _refine_check_parallel(q, pt, Rt, ref, rows, C, L, o, out_q, out_pe, out_oe, out_ok)
    return out_q, out_pe, out_oe, out_ok


def distinct_representatives(q: np.ndarray, err: np.ndarray, ok: np.ndarray, periodic: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Per target, the lowest-error valid sample of each cluster of samples within ``tol`` of it.

    Args:
        q: (B, S, dof); err: (B, S) ranking key (lower is better); ok: (B, S) valid.

    Returns:
        (rep, singletons): (B, S) representatives (pairwise farther apart than ``tol``, max joint
        difference modulo 2*pi), and (B,) the number of clusters with a single member.
    """
    B, S = err.shape
    rep = np.zeros((B, S), dtype=np.bool_)
    count = np.zeros((B, S), dtype=np.int64)
    singletons = np.zeros(B, dtype=np.int64)
    key = np.where(ok, err, np.inf)
    with _PARALLEL_LOCK:
        _representatives(np.ascontiguousarray(q), np.ascontiguousarray(key), np.ascontiguousarray(ok), periodic, float(tol), rep, count, singletons)
    return rep, singletons


def select(q: np.ndarray, rep: np.ndarray, seed: np.ndarray | None, periodic: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """K of each target's representatives: nearest the seed first, or farthest-point order without one.

    Returns:
        (chosen, valid): (B, K) pool indices and validity.
    """
    B = q.shape[0]
    chosen = np.zeros((B, K), dtype=np.int64)
    valid = np.zeros((B, K), dtype=np.bool_)
    s = np.zeros((B, q.shape[2])) if seed is None else np.ascontiguousarray(seed, dtype=np.float64)
    with _PARALLEL_LOCK:
        _select(np.ascontiguousarray(q), rep, s, seed is not None, periodic, int(K), chosen, valid)
    return chosen, valid
