"""Calibrated chain: kinematic corrections identified from measured (joints, tool pose) pairs.

:func:`calibrate_chain` fits corrections to a nominal :class:`KinematicChain` by nonlinear least
squares through a differentiable, parametrized FK (torch, float64; :mod:`.chain_parameters`).
Parameters, in the order they are preferred when some of them are redundant: per movable joint a
zero offset, then origin translations, then small origin rotations, then a tool transform after the
tip (``<joint>.zero``, ``<joint>.origin.x|y|z``, ``<joint>.origin.rx|ry|rz``, ``tool.*``; units and
conventions in :mod:`.chain_parameters`).

Residuals: position (m) and, for pose measurements, ``rotation_weight * vee(skew(R_meas^T R))``
(about the rotation error in rad, times metres per radian).  The default ``rotation_weight`` of
0.1 m/rad makes 1 mrad of orientation error weigh like 0.1 mm: the error a point 10 cm from the
tool frame would see.

Solver: ``scipy.optimize.least_squares(method="lm")`` (MINPACK's Levenberg-Marquardt, with its
own trust-region damping and Jacobian column scaling) with the Jacobian by the complex step
through the torch FK: one batched evaluation at the P parameter vectors ``x + i h e_k``, exact to
rounding (no subtractive cancellation) and much cheaper than functorch's ``jacfwd`` here.  A hand-written LM would
re-implement damping control that MINPACK has had right for decades; the costly part, the
Jacobian, is ours either way.

Identifiability: many corrections are redundant (a zero offset and ``origin.rz`` of the same
z-axis joint; translations along axes parallel to a neighbour's; the tool rotation from
position-only data; anything that only moves the tool frame when no tool offset exists yet).
At the current estimate, the Jacobian's columns are normalized and taken greedily in the order
above; a column whose component orthogonal to the span of those already taken is below
``rank_tolerance`` (sine of the angle to that span), or whose rms effect per sample is below
``min_effect``, cannot be identified from these data and is held fixed (at its current value, zero unless an earlier pass moved it).  Selection is repeated at
each pass's solution until the set no longer changes (identifiability depends on the estimate:
e.g. ``wrist_3_joint.origin.rx`` moves the tool point only once a tool offset exists).  The
result reports the held parameters by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..kinematics.chain import KinematicChain
from ..kinematics.transforms import rotation_angle
from .chain_parameters import ParametrizedChain, bmm, calibrated_urdf, calibration_parameter_names, with_origins

__all__ = [
    "CalibrationConfig",
    "CalibrationResult",
    "ResidualStats",
    "calibrate_chain",
    "calibration_parameter_names",
    "calibrated_urdf",
    "calibration_trial",
]

#: Complex-step size: derivatives exact to rounding for any step this small (no cancellation).
_COMPLEX_STEP = 1e-20


@dataclass(frozen=True)
class CalibrationConfig:
    """Settings of :func:`calibrate_chain`."""

    #: Metres per radian of orientation residual (pose measurements only); 0.1: 1 mrad ~ 0.1 mm.
    rotation_weight: float = 0.1
    #: A parameter whose normalized Jacobian column lies within this sine of the span of the
    #: parameters preferred before it is unidentifiable and held fixed.  1e-3 sits well above the
    #: ~1e-5 that measurement noise lends exactly redundant parameters (by tilting fitted axes) and
    #: well below the sines of parameters that varied moves do identify.
    rank_tolerance: float = 1e-3
    #: A parameter that moves the residuals by less than this rms per sample per unit (metres per
    #: metre or per radian) is unidentifiable: e.g. a wrist tilt seen through a tool offset that
    #: noise alone put there.  1e-4: a rotation needs a lever arm of 0.1 mm.
    min_effect: float = 1e-4
    #: Residual evaluations per LM pass (MINPACK ``max_nfev``).
    max_evaluations: int = 200
    #: Identifiability re-checks at the solution (each may start one more LM pass).
    max_passes: int = 3
    #: Measurement rows per free parameter required (2: twice as many equations as unknowns).
    min_rows_per_parameter: float = 2.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rotation_weight) and self.rotation_weight > 0):
            raise ValueError(f"rotation_weight must be a positive number of metres per radian, got {self.rotation_weight}")
        if not 0 < self.rank_tolerance < 1:
            raise ValueError(f"rank_tolerance must be in (0, 1), got {self.rank_tolerance}")
        if not (math.isfinite(self.min_effect) and self.min_effect >= 0):
            raise ValueError(f"min_effect must be a non-negative number (metres per unit), got {self.min_effect}")
        if self.max_evaluations < 1 or self.max_passes < 1:
            raise ValueError(f"max_evaluations and max_passes must be >= 1, got {self.max_evaluations}, {self.max_passes}")
        if not self.min_rows_per_parameter >= 1:
            raise ValueError(f"min_rows_per_parameter must be >= 1 (LM needs at least as many rows as unknowns), got {self.min_rows_per_parameter}")


@dataclass(frozen=True)
class ResidualStats:
    """Residuals of a chain on the measurements: position in mm; orientation in degrees (NaN position-only)."""

    mean_position_mm: float
    max_position_mm: float
    mean_orientation_deg: float
    max_orientation_deg: float


@dataclass(frozen=True)
class CalibrationResult:
    """Outcome of :func:`calibrate_chain`.

    Attributes:
        chain: the calibrated chain (same joint names, links, axes and limits as the nominal one);
            ``AnalyticForwardModel(result.chain)`` is the calibrated forward model.
        urdf: the nominal URDF with the changed joint origins rewritten, or None when no URDF was given.
        origins: joint name -> (4, 4) origin of every joint whose origin changed.
        parameter_names: (P,) names, e.g. ``elbow_joint.origin.y``, ``wrist_1_joint.zero``, ``tool.z``.
        parameters: (P,) fitted corrections, metres / radians (held ones at their fixed value).
        unidentifiable: names of the parameters the data cannot determine (held fixed).
        before: residuals of the nominal chain on the measurements.
        after: residuals of the calibrated chain on the measurements.
        samples: N, measurements used.
        position_only: True when no orientation was measured.
        iterations: residual evaluations over all LM passes.
        passes: LM passes (identifiability re-checked after each).
        converged: the last pass met its tolerances (False: it stopped at ``max_evaluations``).
    """

    chain: KinematicChain
    urdf: str | None
    origins: dict[str, np.ndarray]
    parameter_names: tuple[str, ...]
    parameters: np.ndarray
    unidentifiable: tuple[str, ...]
    before: ResidualStats
    after: ResidualStats
    samples: int
    position_only: bool
    iterations: int
    passes: int
    converged: bool

    def parameter_dict(self) -> dict[str, float]:
        """Name -> fitted correction (metres / radians), identifiable parameters only."""
        held = set(self.unidentifiable)
        return {n: float(v) for n, v in zip(self.parameter_names, self.parameters) if n not in held}


def _select(J: np.ndarray, tol: float, min_norm: float) -> np.ndarray:
    """(P,) bool: columns of J (rows, P), in order, of norm above ``min_norm`` that add a direction
    beyond ``tol`` (sine) to the span of those kept before them."""
    norms = np.linalg.norm(J, axis=0)
    keep = np.zeros(J.shape[1], dtype=bool)
    basis = np.zeros((J.shape[0], 0))
    scale = norms.max() if norms.size else 0.0
    for i in range(J.shape[1]):
        if norms[i] <= max(1e-12 * scale, min_norm):
            continue
        v = J[:, i] / norms[i]
        for _ in range(2):  # Gram-Schmidt twice: orthogonal to working precision
            v = v - basis @ (basis.T @ v)
        s = np.linalg.norm(v)
        if s > tol:
            keep[i] = True
            basis = np.concatenate([basis, (v / s)[:, None]], axis=1)
    return keep


def _as_tensor(name: str, a, shape: tuple[int | None, ...]) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64))
    if t.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        raise ValueError(f"{name} must have shape {tuple('N' if s is None else s for s in shape)}, got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite; drop invalid samples (ForwardResult.valid) before calibrating")
    return t


def _stats(dp: torch.Tensor, angle: torch.Tensor | None) -> ResidualStats:
    e = torch.linalg.vector_norm(dp, dim=-1) * 1e3
    if angle is None:
        return ResidualStats(float(e.mean()), float(e.max()), math.nan, math.nan)
    a = torch.rad2deg(angle)
    return ResidualStats(float(e.mean()), float(e.max()), float(a.mean()), float(a.max()))


class _Measurements:
    """The residuals of the parametrized chain on measured (joints, tool pose) pairs, their complex-step
    Jacobian and summary statistics: the function the identification minimizes."""

    def __init__(self, chain: KinematicChain, q, position, rotation, rotation_weight: float) -> None:
        self.q = _as_tensor("q", q, (None, chain.dof))
        self.samples = N = self.q.shape[0]
        self.position = _as_tensor("position", position, (N, 3))
        self.rotation = None if rotation is None else _as_tensor("rotation", rotation, (N, 3, 3))
        self.model = ParametrizedChain(chain)
        self.parameters = len(self.model.names)
        self.rotation_weight = rotation_weight
        self.rows_per_sample = 3 if self.rotation is None else 6

    def residuals(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, P) -> residuals (B, N * 3) position-only, (B, N * 6) with orientation."""
        p, R = self.model.forward(x, self.q)
        r = (p - self.position).reshape(x.shape[0], -1)
        if self.rotation is None:
            return r
        E = bmm(self.rotation.transpose(1, 2).to(R.dtype), R)  # (B, N, 3, 3) measured^-1 model, near identity
        v = 0.5 * torch.stack([E[..., 2, 1] - E[..., 1, 2], E[..., 0, 2] - E[..., 2, 0], E[..., 1, 0] - E[..., 0, 1]], dim=-1)
        return torch.cat([r, self.rotation_weight * v.reshape(x.shape[0], -1)], dim=1)

    def residual(self, x: np.ndarray) -> np.ndarray:
        """(P,) -> (rows,)."""
        return self.residuals(torch.as_tensor(x)[None])[0].numpy()

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """(P,) -> (rows, P), by the complex step."""
        P = self.parameters
        X = torch.as_tensor(x).to(torch.complex128)[None] + 1j * _COMPLEX_STEP * torch.eye(P, dtype=torch.complex128)
        return (self.residuals(X).imag / _COMPLEX_STEP).T.numpy()

    def stats(self, x: np.ndarray) -> ResidualStats:
        p, R = self.model.forward(torch.as_tensor(x)[None], self.q)
        return _stats(p[0] - self.position, None if self.rotation is None else rotation_angle(self.rotation, R[0]))


def _check_enough_rows(data: _Measurements, n_free: int, config: CalibrationConfig) -> None:
    """Refuse a fit of ``n_free`` parameters that the measurements cannot determine with margin."""
    if n_free == 0:
        raise ValueError("the measurements constrain no parameter (all Jacobian columns vanish); measure at varied joint configurations")
    if data.samples * data.rows_per_sample < config.min_rows_per_parameter * n_free:
        need = math.ceil(config.min_rows_per_parameter * n_free / data.rows_per_sample)
        raise ValueError(f"{data.samples} measurements cannot determine the {n_free} identifiable parameters with margin; measure at least {need}")


def _lm_pass(data: _Measurements, x: np.ndarray, free: np.ndarray, config: CalibrationConfig):
    """One Levenberg-Marquardt pass over the ``free`` parameters, the others held at ``x``:
    (solution (P,), residual evaluations, converged)."""
    from scipy.optimize import least_squares

    x_held = x.copy()

    def full(xf: np.ndarray) -> np.ndarray:
        out = x_held.copy()
        out[free] = xf
        return out

    def fun(xf: np.ndarray) -> np.ndarray:
        return data.residual(full(xf))

    def jac(xf: np.ndarray) -> np.ndarray:
        return data.jacobian(full(xf))[:, free]

    sol = least_squares(fun, x[free], jac=jac, method="lm", x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-15, max_nfev=config.max_evaluations)
    return full(sol.x), int(sol.nfev), bool(sol.status > 0)  # status 0: max_evaluations reached


def _identify(data: _Measurements, config: CalibrationConfig):
    """LM passes from zero corrections, the identifiable set re-selected at each pass's solution
    until it no longer changes: (corrections (P,), free (P,) bool, evaluations, passes, converged)."""
    x = np.zeros(data.parameters)
    free = np.zeros(data.parameters, dtype=bool)
    evaluations = passes = 0
    converged = False
    for _ in range(config.max_passes):
        new_free = _select(data.jacobian(x), config.rank_tolerance, config.min_effect * math.sqrt(data.samples))
        if passes and np.array_equal(new_free, free):
            break
        free = new_free
        _check_enough_rows(data, int(free.sum()), config)
        x, nfev, converged = _lm_pass(data, x, free, config)
        evaluations += nfev
        passes += 1
    return x, free, evaluations, passes, converged


def calibrate_chain(
    chain: KinematicChain,
    q: torch.Tensor | np.ndarray,
    position: torch.Tensor | np.ndarray,
    rotation: torch.Tensor | np.ndarray | None = None,
    config: CalibrationConfig | None = None,
    urdf: str | Path | None = None,
) -> CalibrationResult:
    """Identify the chain corrections that explain measured tool poses (see the module docstring).

    Args:
        chain: the nominal chain (revolute / continuous joints; end it at a fixed tool link such as
            ``tool0`` so a tool offset can be written back).
        q: (N, dof) measured joint values, radians.
        position: (N, 3) measured tool positions, metres, chain base frame.
        rotation: (N, 3, 3) measured tool rotations, base frame, or None for position-only data.
        config: solver settings (defaults: :class:`CalibrationConfig`).
        urdf: the nominal URDF (path or text) to rewrite into ``result.urdf``; None: no URDF.

    Returns:
        A :class:`CalibrationResult`.

    Raises:
        ValueError: wrong shapes, non-finite values, or too few measurements for the parameters
            the data constrain (``config.min_rows_per_parameter`` rows each).
    """
    config = config or CalibrationConfig()
    data = _Measurements(chain, q, position, rotation, config.rotation_weight)
    before = data.stats(np.zeros(data.parameters))
    x, free, evaluations, passes, converged = _identify(data, config)
    origins = data.model.origin_matrices(x)
    calibrated = with_origins(chain, origins)
    names = data.model.names
    return CalibrationResult(
        chain=calibrated,
        urdf=None if urdf is None else calibrated_urdf(urdf, origins),
        origins=origins,
        parameter_names=names,
        parameters=x,
        unidentifiable=tuple(n for n, f in zip(names, free) if not f),
        before=before,
        after=data.stats(x),
        samples=data.samples,
        position_only=data.rotation is None,
        iterations=evaluations,
        passes=passes,
        converged=converged,
    )


def _axis_line_errors(a: KinematicChain, b: KinematicChain) -> tuple[float, float]:
    """(max angle rad, max distance m) between the joint axis lines of two chains at zero readings.

    The axis lines (in the base frame, all joint readings 0) are what identification can recover,
    whatever parameters represent them.  The last joint is left out: with position-only data and
    no tool offset its axis direction does not move the measured point.
    """
    q0 = torch.zeros(1, a.dof, dtype=torch.float64)
    lines = []
    for chain in (a, b):
        names, T = chain.link_frames(q0)  # (1, L, 4, 4)
        frames = dict(zip(names, T[0].numpy()))
        lines.append([(frames[j.child][:3, 3], frames[j.child][:3, :3] @ j.axis) for j in chain.joints if j.movable][:-1])
    angle = dist = 0.0
    for (pa, da), (pb, db) in zip(*lines):
        angle = max(angle, math.atan2(np.linalg.norm(np.cross(da, db)), float(da @ db)))
        dist = max(dist, float(np.linalg.norm(np.cross(pb - pa, db))))  # point of a's axis to b's line
    return angle, dist


def calibration_trial(
    nominal: KinematicChain,
    true_chain: KinematicChain,
    moves: int,
    noise_m: float = 0.0,
    position_only: bool = True,
    seed: int = 0,
    test_samples: int = 2000,
    config: CalibrationConfig | None = None,
) -> dict:
    """Calibrate ``nominal`` from ``moves`` simulated measurements of ``true_chain``; score on fresh configurations.

    Measurements: joints uniform in the nominal chain's learning limits; positions with Gaussian
    noise of ``noise_m`` metres per axis (rotations noise-free).  Errors are tool-position
    distances between the calibrated and the true chain at ``test_samples`` fresh configurations.

    Returns:
        A JSON-able dict: ``moves``, ``noise_mm``, ``position_only``, ``fresh_error_before_mm``
        (nominal vs true, mean), ``fresh_error_mean_mm``, ``fresh_error_max_mm``,
        ``fit_residual_mean_mm``, ``axis_angle_error_max_deg`` / ``axis_offset_error_max_mm`` (joint
        axis lines at zero readings vs the true arm's, last joint left out), ``unidentifiable``
        (count), ``iterations``, ``passes``.
    """
    gen = torch.Generator().manual_seed(seed)
    q = nominal.sample_configurations(moves, gen)
    fk = true_chain.forward(q)
    noise = torch.randn(moves, 3, generator=gen, dtype=torch.float64) * noise_m
    res = calibrate_chain(nominal, q, fk.position + noise, None if position_only else fk.rotation, config)
    q_test = nominal.sample_configurations(test_samples, gen)
    p_true = true_chain.forward(q_test).position
    e_before = torch.linalg.vector_norm(nominal.forward(q_test).position - p_true, dim=-1) * 1e3
    e_after = torch.linalg.vector_norm(res.chain.forward(q_test).position - p_true, dim=-1) * 1e3
    axis_angle, axis_offset = _axis_line_errors(res.chain, true_chain)
    return {
        "moves": moves,
        "noise_mm": noise_m * 1e3,
        "position_only": position_only,
        "fresh_error_before_mm": float(e_before.mean()),
        "fresh_error_mean_mm": float(e_after.mean()),
        "fresh_error_max_mm": float(e_after.max()),
        "fit_residual_mean_mm": res.after.mean_position_mm,
        "axis_angle_error_max_deg": math.degrees(axis_angle),
        "axis_offset_error_max_mm": axis_offset * 1e3,
        "unidentifiable": len(res.unidentifiable),
        "iterations": res.iterations,
        "passes": res.passes,
    }
