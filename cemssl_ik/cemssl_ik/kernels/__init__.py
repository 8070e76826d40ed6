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

Modules: :mod:`.linalg` (FK, Jacobian, residual, the small linear solves), :mod:`.refinement` (LM
with valley steps, wrapping and checking, partner starts), :mod:`.clustering` (dedupe, selection);
this package's functions are their entry points.  Chain constants come from :func:`chain_arrays` (:class:`ChainArrays`: the folded segments and
limits of a :class:`~cemssl_ik.kinematics.chain.KinematicChain`), options in a
:class:`KernelOptions`; the kernels read both by field name.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

from .jit import AVAILABLE

__all__ = ["AVAILABLE", "KernelOptions", "ChainArrays", "chain_arrays", "refine_check", "partner_starts", "distinct_representatives", "select"]

#: batches of fewer samples run on the calling thread.  In isolation two cores already halve a
#: 64-sample batch, but in the service, where client processes and executor threads compete for
#: the same cores, parallel regions for small batches made single requests slower (K = 16 p50
#: 10.5 -> 12.4 ms with 32 here, measured with `cemssl-ik bench service --k 1 16 --clients 1`)
SERIAL_BELOW = 256

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
    from .clustering import _representatives_parallel, _representatives_serial, _select_parallel, _select_serial
    from .refinement import _partners, _refine_check_parallel, _refine_check_serial


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
