"""Per-sample geometry and linear algebra of the kernels: FK and the geometric Jacobian of a
:class:`~cemssl_ik.kernels.ChainArrays`, the pose residual, Cholesky solves, the weakest
direction of a Jacobian (one-sided Jacobi SVD)."""

from __future__ import annotations

import math

from .jit import _jit, _jit_inline


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
