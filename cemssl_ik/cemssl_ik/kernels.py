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

Chain constants come from :func:`chain_arrays` (:class:`ChainArrays`: the folded segments and
limits of a :class:`~cemssl_ik.kinematics.chain.KinematicChain`), options in a
:class:`KernelOptions`; the kernels read both by field name.
"""

from __future__ import annotations

import math
import threading
from collections import namedtuple
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

try:  # numba is a pinned requirement; the torch path remains usable without it
    import numba as nb

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    nb = None
    AVAILABLE = False

__all__ = ["AVAILABLE", "KernelOptions", "ChainArrays", "chain_arrays", "refine_check", "partner_starts", "distinct_representatives", "select"]

#: batches of fewer samples run on the calling thread.  In isolation two cores already halve a
#: 64-sample batch, but in the service, where client processes and executor threads compete for
#: the same cores, parallel regions for small batches made single requests slower (K = 16 p50
#: 10.5 -> 12.4 ms with 32 here, measured with `cemssl-ik bench service --k 1 16 --clients 1`)
SERIAL_BELOW = 256

#: valley steps (see ``_valley_step``) only where the Jacobian's sigma_min < VALLEY_RATIO * sigma_max
#: (UR3 solutions: ~1e-4 within 1e-3 rad or 1 mm of a singularity, median 0.03 elsewhere) ...
VALLEY_RATIO = 0.01
#: ... and the residual norm is below VALLEY_ERROR (metres / radians): elsewhere a slow LM
#: iteration is not crawling along a singular valley, and the step would only cost time
VALLEY_ERROR = 0.05

#: dedupe and selection of pools with fewer samples run on the calling thread: a few microseconds
#: of work per target, which a parallel region's wake-up (milliseconds on a loaded machine) dwarfs
CLUSTER_SERIAL_BELOW = 16384

# Parallel kernels use all cores anyway, and numba's fallback "workqueue" threading layer (used
# where neither TBB nor OpenMP is available) must not be entered from two threads at once.
_PARALLEL_LOCK = threading.Lock()


@dataclass(frozen=True)
class KernelOptions:
    """Options of :func:`refine_check` (see :class:`cemssl_ik.solver.SolverOptions` for their meaning).

    The compiled kernels read them by field name from :meth:`compiled`."""

    #: most Levenberg-Marquardt iterations per sample
    iterations: int = 30
    #: abandon samples still farther than ``give_up_error`` after this many iterations (-1: never)
    give_up_after: int = -1
    #: smallest LM damping (m^2)
    damping: float = 1e-9
    #: LM damping of the first step
    initial_damping: float = 1e-3
    #: converged when the residual norm is below this
    tol: float = 1e-13
    #: residual norm (metres / radians) beyond which ``give_up_after`` abandons a sample
    give_up_error: float = 1e-3
    #: largest joint change of one step (radians / metres)
    max_step: float = 1.0
    #: accept solutions within this distance of the target (metres)
    position_tolerance: float = 1e-6
    #: and within this angle of the target rotation (radians)
    orientation_tolerance: float = 1e-5
    #: run the refinement (False: only wrap and check)
    refine: bool = True
    #: Newton steps along the weakest direction where LM stalls near a singularity (see ``_valley_step``)
    singular_steps: bool = True

    def compiled(self) -> tuple:
        """The options as the named tuple the compiled kernels take (numba compiles a named tuple's
        fields as attributes), each field converted to its declared type so that one compiled
        version serves every call."""
        return _CompiledOptions(*(t(getattr(self, name)) for name, t in _OPTION_TYPES))


#: (name, type) of KernelOptions' fields, and the named tuple the kernels read them from
_OPTION_TYPES = tuple((f.name, type(f.default)) for f in fields(KernelOptions))
_CompiledOptions = namedtuple("_CompiledOptions", [name for name, _ in _OPTION_TYPES])


class ChainArrays(NamedTuple):
    """Kernel constants of a chain (:func:`chain_arrays`): its folded segments and joint limits."""

    #: (dof, 3, 3) fixed rotation of each joint's origin
    R_o: np.ndarray
    #: (dof, 3, 3) R_o K and R_o K^2 (K: the joint axis's cross-product matrix; Rodrigues' terms)
    R_oK: np.ndarray
    R_oK2: np.ndarray
    #: (dof, 3) translation of each joint's origin
    t_o: np.ndarray
    #: (dof, 3) R_o axis: the joint axis in its parent's frame
    R_oa: np.ndarray
    #: (dof,) bool: revolute joint (else prismatic)
    revolute: np.ndarray
    #: (3, 3) and (3,): the fixed transform after the last joint
    R_tip: np.ndarray
    t_tip: np.ndarray
    #: (dof,) real joint limits
    lower: np.ndarray
    upper: np.ndarray
    #: (dof,) bool: 2*pi-periodic joints
    periodic: np.ndarray


def chain_arrays(chain) -> ChainArrays:
    """The kernel constants of a :class:`~cemssl_ik.kinematics.chain.KinematicChain`."""
    s = chain.segment_arrays()
    c = np.ascontiguousarray
    return ChainArrays(
        s["R_o"], s["R_oK"], s["R_oK2"], s["t_o"], s["R_oa"], s["revolute"] > 0.5, s["R_tip"], s["t_tip"],
        c(chain.lower, dtype=np.float64), c(chain.upper, dtype=np.float64), c(chain.periodic, dtype=np.bool_),
    )


if AVAILABLE:
    _jit = nb.njit(cache=True, nogil=True, fastmath=False)
    _jit_par = nb.njit(cache=True, nogil=True, fastmath=False, parallel=True)
    # compiled into their callers: a separate function gets the chain's named constants (eleven
    # arrays) by value on every call, which made refinement ~25 % slower than inlined
    _jit_inline = nb.njit(cache=True, nogil=True, fastmath=False, inline="always")

    @_jit
    def _rmul(R, M):
        """R <- R @ M for 3x3 matrices, row by row (each row only reads itself)."""
        for a in range(3):
            r0, r1, r2 = R[a, 0], R[a, 1], R[a, 2]
            for b in range(3):
                R[a, b] = r0 * M[0, b] + r1 * M[1, b] + r2 * M[2, b]

    @_jit_inline
    def _fk(q, C, p, R, axes, origins, tmp):
        """Tip position p (3,) and rotation R (3, 3) of q; joint axes / origins (dof, 3) in the base frame."""
        R_o, R_oK, R_oK2, t_o, R_oa, rev, R_tip, t_tip = C.R_o, C.R_oK, C.R_oK2, C.t_o, C.R_oa, C.revolute, C.R_tip, C.t_tip
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

    @_jit_inline
    def _linearize(q, C, pt, Rt, rows, p, R, axes, origins, tmp, e, J):
        """FK of q, its residual e against the target (returned: |e|) and the Jacobian J there."""
        _fk(q, C, p, R, axes, origins, tmp)
        err = _residual(p, R, pt, Rt, rows, e)
        _jacobian(p, axes, origins, C.revolute, J)
        return err

    @_jit_inline
    def _spd_solve(A, n, L, b, x):
        """x = A^-1 b for a symmetric positive definite n x n A (lower triangle read) by Cholesky
        (L: n x n scratch); False if A is not positive definite.  x may be b itself."""
        for a in range(n):
            for c in range(a + 1):
                acc = A[a, c]
                for k in range(c):
                    acc -= L[a, k] * L[c, k]
                if a == c:
                    if not acc > 0.0:
                        return False
                    L[a, a] = math.sqrt(acc)
                else:
                    L[a, c] = acc / L[c, c]
        for a in range(n):  # L z = b
            acc = b[a]
            for k in range(a):
                acc -= L[a, k] * x[k]
            x[a] = acc / L[a, a]
        for a in range(n - 1, -1, -1):  # L^T x = z
            acc = x[a]
            for k in range(a + 1, n):
                acc -= L[k, a] * x[k]
            x[a] = acc / L[a, a]
        return True

    @_jit
    def _lm_step(J, e, rows, dof, lam, A, L, y, dq):
        """dq = J^T (J J^T + lam I)^-1 e (Cholesky of the rows x rows normal matrix); False if not positive definite."""
        for a in range(rows):
            for b in range(a + 1):
                acc = 0.0
                for k in range(dof):
                    acc += J[a, k] * J[b, k]
                A[a, b] = acc
            A[a, a] += lam
        if not _spd_solve(A, rows, L, e, y):
            return False
        for k in range(dof):
            acc = 0.0
            for a in range(rows):
                acc += J[a, k] * y[a]
            dq[k] = acc
        return True

    @_jit
    def _weakest_direction(J, rows, dof, W, V, basis, v):
        """One-sided Jacobi SVD of J[:rows] (rows >= dof): returns (sigma_min, sigma_max, g_row)
        and fills v (dof,) with the weakest right singular vector, basis (dof - 1, dof) with the
        others, W (rows, dof) with J V (column k = sigma_k u_k).  Accurate for small singular values,
        and a few times cheaper than LAPACK's call overhead for these sizes."""
        for a in range(rows):
            for k in range(dof):
                W[a, k] = J[a, k]
        for i in range(dof):
            for j in range(dof):
                V[i, j] = 1.0 if i == j else 0.0
        for _sweep in range(30):
            rotated = False
            for i in range(dof - 1):
                for j in range(i + 1, dof):
                    alpha, beta, gamma = 0.0, 0.0, 0.0
                    for a in range(rows):
                        alpha += W[a, i] * W[a, i]
                        beta += W[a, j] * W[a, j]
                        gamma += W[a, i] * W[a, j]
                    if abs(gamma) <= 1e-15 * math.sqrt(alpha * beta) or gamma == 0.0:
                        continue
                    rotated = True
                    zeta = (beta - alpha) / (2.0 * gamma)
                    t = (1.0 if zeta >= 0 else -1.0) / (abs(zeta) + math.sqrt(1.0 + zeta * zeta))
                    c = 1.0 / math.sqrt(1.0 + t * t)
                    sn = c * t
                    for a in range(rows):
                        wi, wj = W[a, i], W[a, j]
                        W[a, i], W[a, j] = c * wi - sn * wj, sn * wi + c * wj
                    for a in range(dof):
                        vi, vj = V[a, i], V[a, j]
                        V[a, i], V[a, j] = c * vi - sn * vj, sn * vi + c * vj
            if not rotated:
                break
        k_min, s_min, s_max = 0, math.inf, 0.0
        for k in range(dof):
            acc = 0.0
            for a in range(rows):
                acc += W[a, k] * W[a, k]
            sk = math.sqrt(acc)
            if sk < s_min:
                k_min, s_min = k, sk
            s_max = max(s_max, sk)
        r = 0
        for k in range(dof):
            if k == k_min:
                for a in range(dof):
                    v[a] = V[a, k]
            else:
                for a in range(dof):
                    basis[r, a] = V[a, k]
                r += 1
        return s_min, s_max, k_min

    @_jit
    def _cholesky_solve(B, e, rows, m, G, L, z):
        """z = (B^T B)^-1 B^T e for B (rows, m) of full column rank; False if not positive definite."""
        for i in range(m):
            for j in range(i + 1):
                acc = 0.0
                for a in range(rows):
                    acc += B[a, i] * B[a, j]
                G[i, j] = acc
            acc = 0.0
            for a in range(rows):
                acc += B[a, i] * e[a]
            z[i] = acc  # B^T e, solved in place
        return _spd_solve(G, m, L, z, z)

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
    def _representatives_one(b, q, err, ok, labels, periodic, tol, rep, count):
        """Greedy clustering of target b's valid samples, lowest error first: rep[b, s] marks the
        first (best) sample of each cluster, count[b, s] its members; returns the singletons.
        Samples with different labels are never in one cluster."""
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
                if labels[b, s] == labels[b, reps[r]] and _joint_distance(q[b, s], q[b, reps[r]], periodic) <= tol:
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
    def _representatives_parallel(q, err, ok, labels, periodic, tol, rep, count, singletons):
        for b in nb.prange(q.shape[0]):
            singletons[b] = _representatives_one(b, q, err, ok, labels, periodic, tol, rep, count)

    @_jit
    def _representatives_serial(q, err, ok, labels, periodic, tol, rep, count, singletons):
        for b in range(q.shape[0]):
            singletons[b] = _representatives_one(b, q, err, ok, labels, periodic, tol, rep, count)

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
    def _select_parallel(q, rep, seed, has_seed, periodic, K, chosen, valid):
        for b in nb.prange(q.shape[0]):
            _select_one(b, q, rep, seed, has_seed, periodic, K, chosen, valid)

    @_jit
    def _select_serial(q, rep, seed, has_seed, periodic, K, chosen, valid):
        for b in range(q.shape[0]):
            _select_one(b, q, rep, seed, has_seed, periodic, K, chosen, valid)


def refine_check(consts, q, position, rotation, reference, options: KernelOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Refine (optional), wrap to the copy nearest ``reference`` within limits, and check N samples.

    Args:
        consts: :func:`chain_arrays` of the chain.
        q: (N, dof) float64 start joint values.
        position: (N, 3) targets; rotation: (N, 3, 3) or None (position targets).
        reference: (N, dof) seeds for the 2*pi copies.
        options: refinement and acceptance options.

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
    if not isinstance(options, KernelOptions):
        raise TypeError(f"options must be a KernelOptions, got {type(options).__name__}")
    if not isinstance(consts, ChainArrays):
        raise TypeError(f"consts must be the ChainArrays of chain_arrays(chain), got {type(consts).__name__}")
    o = options.compiled()
    if N < SERIAL_BELOW:
        _refine_check_serial(q, pt, Rt, ref, rows, consts, o, out_q, out_pe, out_oe, out_ok)
    else:
        with _PARALLEL_LOCK:
            _refine_check_parallel(q, pt, Rt, ref, rows, consts, o, out_q, out_pe, out_oe, out_ok)
    return out_q, out_pe, out_oe, out_ok


def partner_starts(consts, q: np.ndarray, position: np.ndarray, rotation: np.ndarray | None, ratio: float = 0.002, h: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Start points for the other root of each near-singular solution's fold (see ``_partners_one``).

    Args:
        q: (N, dof) converged solutions; position (N, 3), rotation (N, 3, 3) or None: their targets.
        ratio: only solutions whose Jacobian has sigma_min < ratio * sigma_max get a start.

    Returns:
        (starts, has): (N, dof) start points and (N,) bool, False where a solution got none.
    """
    q = np.ascontiguousarray(q, dtype=np.float64)
    N, dof = q.shape
    rows = 3 if rotation is None else 6
    pt = np.ascontiguousarray(position, dtype=np.float64)
    Rt = np.broadcast_to(np.eye(3), (N, 3, 3)).copy() if rotation is None else np.ascontiguousarray(rotation, dtype=np.float64)
    out = np.full((N, 1, dof), np.nan)
    count = np.zeros(N, dtype=np.int64)
    if rows >= dof and N:
        _partners(q, pt, Rt, rows, consts, float(ratio), float(h), out, count)
    return out[:, 0], count > 0


def distinct_representatives(q: np.ndarray, err: np.ndarray, ok: np.ndarray, periodic: np.ndarray, tol: float, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per target, the lowest-error valid sample of each cluster of samples within ``tol`` of it.

    Args:
        q: (B, S, dof); err: (B, S) ranking key (lower is better); ok: (B, S) valid.
        labels: (B, S) int64 configuration classes, or None: samples of different classes are
            distinct however close (two solutions of a pose near a singularity, where classes
            with at most one solution each meet).

    Returns:
        (rep, singletons): (B, S) representatives (pairwise farther apart than ``tol``, max joint
        difference modulo 2*pi, or of different classes), and (B,) the number of clusters with a
        single member.
    """
    B, S = err.shape
    rep = np.zeros((B, S), dtype=np.bool_)
    count = np.zeros((B, S), dtype=np.int64)
    singletons = np.zeros(B, dtype=np.int64)
    key = np.where(ok, err, np.inf)
    lab = np.zeros((B, S), dtype=np.int64) if labels is None else np.ascontiguousarray(labels, dtype=np.int64)
    args = (np.ascontiguousarray(q), np.ascontiguousarray(key), np.ascontiguousarray(ok), lab, periodic, float(tol), rep, count, singletons)
    if B * S < CLUSTER_SERIAL_BELOW:
        _representatives_serial(*args)
    else:
        with _PARALLEL_LOCK:
            _representatives_parallel(*args)
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
    args = (np.ascontiguousarray(q), rep, s, seed is not None, periodic, int(K), chosen, valid)
    if B * q.shape[1] < CLUSTER_SERIAL_BELOW:
        _select_serial(*args)
    else:
        with _PARALLEL_LOCK:
            _select_parallel(*args)
    return chosen, valid
