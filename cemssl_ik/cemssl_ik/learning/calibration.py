"""Calibrated chain: kinematic corrections identified from measured (joints, tool pose) pairs.

:func:`calibrate_chain` fits corrections to a nominal :class:`KinematicChain` by nonlinear least
squares through a differentiable, parametrized FK (torch, float64).  Parameters, in the order they
are preferred when some of them are redundant:

- ``<joint>.zero`` (rad): joint zero offset, true angle = reading + offset;
- ``<joint>.origin.x|y|z`` (m): added to the joint origin's translation (parent frame);
- ``<joint>.origin.rx|ry|rz`` (rad): the origin's rotation right-multiplied by
  ``Rx(rx) Ry(ry) Rz(rz)`` (small rotations about the joint frame's axes, before the joint turns);
- ``tool.x|y|z`` (m), ``tool.rx|ry|rz`` (rad): a transform after the chain's tip, in the tip frame.

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
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..kinematics.chain import JointSpec, KinematicChain
from ..kinematics.transforms import rotation_angle
from ..kinematics.urdf import read_urdf_text

__all__ = [
    "CalibrationConfig",
    "CalibrationResult",
    "ResidualStats",
    "calibrate_chain",
    "calibration_parameter_names",
    "calibrated_urdf",
    "calibration_trial",
]

_TRANSLATIONS = ("origin.x", "origin.y", "origin.z")
_ROTATIONS = ("origin.rx", "origin.ry", "origin.rz")
#: Complex-step size: derivatives exact to rounding for any step this small (no cancellation).
_COMPLEX_STEP = 1e-20
_TOOL = ("tool.x", "tool.y", "tool.z", "tool.rx", "tool.ry", "tool.rz")


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


def calibration_parameter_names(chain: KinematicChain) -> tuple[str, ...]:
    """(P,) parameter names of ``chain`` in preference order: 7 per movable joint, then 6 for the tool."""
    movable = [j.name for j in chain.joints if j.movable]
    names = [f"{n}.zero" for n in movable]
    names += [f"{n}.{p}" for n in movable for p in _TRANSLATIONS]
    names += [f"{n}.{p}" for n in movable for p in _ROTATIONS]
    return tuple(names) + _TOOL


def _elementary(axis: int, angle: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotations about x (0), y (1) or z (2) by angles (B,) (real or complex)."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    rows = {
        0: ((o, z, z), (z, c, -s), (z, s, c)),
        1: ((c, z, s), (z, o, z), (-s, z, c)),
        2: ((c, -s, z), (s, c, z), (z, z, o)),
    }[axis]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched matmul with explicit broadcasting: a (3, 3) matrix broadcast against a batch runs
    as one threaded GEMM that stalls for milliseconds on a busy machine; a batched one does not."""
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return torch.matmul(a.expand(*batch, 3, 3), b.expand(*batch, 3, 3))


def _apply(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """R (..., 3, 3) times t (..., 3), broadcast elementwise (no GEMM)."""
    return (R * t[..., None, :]).sum(-1)


class _ParametrizedChain:
    """FK of ``chain`` with corrections ``x`` (B, P) of :func:`calibration_parameter_names`, batched over B.

    Works in real and complex dtypes: the Jacobian is taken by the complex step (one batched
    evaluation of P perturbed parameter vectors; exact to rounding, no subtractive cancellation).
    """

    def __init__(self, chain: KinematicChain) -> None:
        if any(t == "prismatic" for t in chain.joint_types):
            raise ValueError(f"calibration supports revolute / continuous joints only; chain {chain.name!r} has {chain.joint_types}")
        self.chain = chain
        self.names = calibration_parameter_names(chain)
        self.dof = chain.dof
        self.movable = [i for i, j in enumerate(chain.joints) if j.movable]
        self.origins = [torch.as_tensor(j.origin, dtype=torch.float64) for j in chain.joints]  # (4, 4) each
        self.K = [torch.as_tensor(_skew(j.axis), dtype=torch.float64) for j in chain.joints]  # (3, 3) each

    def pieces(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Corrected origin of movable joint k, zero offset folded in: R (B, 3, 3), t (B, 3)."""
        n, i = self.dof, self.movable[k]
        T, K = self.origins[i].to(x.dtype), self.K[i].to(x.dtype)
        zero = x[:, k, None, None]
        d = x[:, n + 3 * k : n + 3 * k + 3]
        r = x[:, 4 * n + 3 * k : 4 * n + 3 * k + 3]
        R_zero = torch.eye(3, dtype=x.dtype) + torch.sin(zero) * K + (1 - torch.cos(zero)) * (K @ K)
        R = _bmm(T[:3, :3], _bmm(_elementary(0, r[:, 0]), _bmm(_elementary(1, r[:, 1]), _bmm(_elementary(2, r[:, 2]), R_zero))))
        return R, T[:3, 3] + d

    def tool(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tool transform in the tip frame: R (B, 3, 3), t (B, 3)."""
        t = x[:, 7 * self.dof : 7 * self.dof + 6]
        return _bmm(_elementary(0, t[:, 3]), _bmm(_elementary(1, t[:, 4]), _elementary(2, t[:, 5]))), t[:, :3]

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, P), joints q (N, dof) -> tool positions (B, N, 3) metres and rotations (B, N, 3, 3), base frame."""
        B, N = x.shape[0], q.shape[0]
        R = torch.eye(3, dtype=x.dtype).expand(B, N, 3, 3)
        p = torch.zeros(B, N, 3, dtype=x.dtype)
        k = 0
        for i, j in enumerate(self.chain.joints):
            if j.movable:
                R_o, t_o = self.pieces(x, k)  # (B, 3, 3), (B, 3)
                K = self.K[i]
                s, c = torch.sin(q[:, k])[:, None, None], torch.cos(q[:, k])[:, None, None]
                R_q = (torch.eye(3, dtype=q.dtype) + s * K + (1 - c) * (K @ K)).to(x.dtype)  # (N, 3, 3)
                p = p + _apply(R, t_o[:, None, :])
                R = _bmm(R, _bmm(R_o[:, None], R_q[None]))
                k += 1
            else:
                T = self.origins[i].to(x.dtype)
                p = p + _apply(R, T[:3, 3])
                R = _bmm(R, T[:3, :3])
        R_t, t_t = self.tool(x)
        return p + _apply(R, t_t[:, None, :]), _bmm(R, R_t[:, None])

    def origin_matrices(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Joint name -> corrected (4, 4) origin, for the joints the corrections change."""
        xt = torch.as_tensor(x, dtype=torch.float64)[None]
        out: dict[str, np.ndarray] = {}
        for k, i in enumerate(self.movable):
            R, t = self.pieces(xt, k)
            out[self.chain.joints[i].name] = _homogeneous(R[0].numpy(), t[0].numpy())
        R_t, t_t = self.tool(xt)
        R_t, t_t = R_t[0], t_t[0]
        if np.any(x[7 * self.dof :] != 0.0):
            last = self.chain.joints[-1]
            if last.movable:
                raise ValueError(
                    f"a tool offset needs a fixed joint after the last movable one to carry it, but chain {self.chain.name!r} ends "
                    f"with movable joint {last.name!r}; build the chain to a tool link (e.g. tool0)"
                )
            out[last.name] = last.origin @ _homogeneous(R_t.numpy(), t_t.numpy())
        return out


def _skew(v: np.ndarray) -> np.ndarray:
    x, y, z = (float(c) for c in v)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def _homogeneous(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def _with_origins(chain: KinematicChain, origins: dict[str, np.ndarray]) -> KinematicChain:
    specs = [JointSpec(j.name, j.type, j.parent, j.child, origins.get(j.name, j.origin), j.axis, j.lower, j.upper, j.velocity) for j in chain.joints]
    return KinematicChain(specs, name=chain.name)


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
    from scipy.optimize import least_squares

    config = config or CalibrationConfig()
    qt = _as_tensor("q", q, (None, chain.dof))
    N = qt.shape[0]
    pt = _as_tensor("position", position, (N, 3))
    Rt = None if rotation is None else _as_tensor("rotation", rotation, (N, 3, 3))
    model = _ParametrizedChain(chain)
    P = len(model.names)
    w = config.rotation_weight

    def residuals(x: torch.Tensor) -> torch.Tensor:
        """x (B, P) -> residuals (B, N * 3) position-only, (B, N * 6) with orientation."""
        p, R = model.forward(x, qt)
        r = (p - pt).reshape(x.shape[0], -1)
        if Rt is None:
            return r
        E = _bmm(Rt.transpose(1, 2).to(R.dtype), R)  # (B, N, 3, 3) measured^-1 model, near identity
        v = 0.5 * torch.stack([E[..., 2, 1] - E[..., 1, 2], E[..., 0, 2] - E[..., 2, 0], E[..., 1, 0] - E[..., 0, 1]], dim=-1)
        return torch.cat([r, w * v.reshape(x.shape[0], -1)], dim=1)

    def residual(x: np.ndarray) -> np.ndarray:  # (P,) -> (rows,)
        return residuals(torch.as_tensor(x)[None])[0].numpy()

    def jacobian(x: np.ndarray) -> np.ndarray:  # (P,) -> (rows, P), complex step
        X = torch.as_tensor(x).to(torch.complex128)[None] + 1j * _COMPLEX_STEP * torch.eye(P, dtype=torch.complex128)
        return (residuals(X).imag / _COMPLEX_STEP).T.numpy()

    rows_per_sample = 3 if Rt is None else 6

    def stats(x: np.ndarray) -> ResidualStats:
        p, R = model.forward(torch.as_tensor(x)[None], qt)
        return _stats(p[0] - pt, None if Rt is None else rotation_angle(Rt, R[0]))

    x = np.zeros(P)
    before = stats(x)
    free = np.zeros(P, dtype=bool)
    evaluations = passes = 0
    converged = False
    for _ in range(config.max_passes):
        J = jacobian(x)  # (rows, P)
        new_free = _select(J, config.rank_tolerance, config.min_effect * math.sqrt(N))
        if passes and np.array_equal(new_free, free):
            break
        free = new_free
        n_free = int(free.sum())
        if n_free == 0:
            raise ValueError("the measurements constrain no parameter (all Jacobian columns vanish); measure at varied joint configurations")
        if N * rows_per_sample < config.min_rows_per_parameter * n_free:
            need = math.ceil(config.min_rows_per_parameter * n_free / rows_per_sample)
            raise ValueError(f"{N} measurements cannot determine the {n_free} identifiable parameters with margin; measure at least {need}")
        x_held = x.copy()

        def full(xf: np.ndarray, x_held: np.ndarray = x_held, free: np.ndarray = free) -> np.ndarray:
            out = x_held.copy()
            out[free] = xf
            return out

        def fun(xf: np.ndarray) -> np.ndarray:
            return residual(full(xf))

        def jac(xf: np.ndarray) -> np.ndarray:
            return jacobian(full(xf))[:, free]

        sol = least_squares(fun, x[free], jac=jac, method="lm", x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-15, max_nfev=config.max_evaluations)
        x = full(sol.x)
        evaluations += int(sol.nfev)
        converged = bool(sol.status > 0)  # 0: max_evaluations reached
        passes += 1
    origins = model.origin_matrices(x)
    calibrated = _with_origins(chain, origins)
    return CalibrationResult(
        chain=calibrated,
        urdf=None if urdf is None else calibrated_urdf(urdf, origins),
        origins=origins,
        parameter_names=model.names,
        parameters=x,
        unidentifiable=tuple(n for n, f in zip(model.names, free) if not f),
        before=before,
        after=stats(x),
        samples=N,
        position_only=Rt is None,
        iterations=evaluations,
        passes=passes,
        converged=converged,
    )


def _matrix_to_rpy(R: np.ndarray) -> tuple[float, float, float]:
    """(3, 3) rotation -> URDF (roll, pitch, yaw) with R = Rz(yaw) Ry(pitch) Rx(roll)."""
    pitch = math.atan2(-R[2, 0], math.hypot(R[0, 0], R[1, 0]))
    if math.hypot(R[0, 0], R[1, 0]) > 1e-9:
        return math.atan2(R[2, 1], R[2, 2]), pitch, math.atan2(R[1, 0], R[0, 0])
    # gimbal lock (pitch = +-pi/2): only roll -+ yaw is defined; put it all in yaw.
    return 0.0, pitch, math.atan2(-R[0, 1], R[1, 1])


def calibrated_urdf(urdf: str | Path, origins: dict[str, np.ndarray]) -> str:
    """The URDF (path or text) with the named joints' ``<origin>`` rewritten; all else kept (comments too).

    Args:
        urdf: the nominal URDF.
        origins: joint name -> (4, 4) origin (e.g. :attr:`CalibrationResult.origins`).

    Raises:
        ValueError: a joint is not in the URDF, or the text is not XML.
    """
    import xml.etree.ElementTree as ET

    text = read_urdf_text(urdf)
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    try:
        root = ET.fromstring(text, parser=parser)
    except ET.ParseError as exc:
        raise ValueError(f"the nominal URDF is not valid XML: {exc}") from None
    by_name = {j.get("name"): j for j in root.iter("joint")}
    for name, T in origins.items():
        elem = by_name.get(name)
        if elem is None:
            raise ValueError(f"joint {name!r} is not in the URDF (its joints: {sorted(k for k in by_name if k)})")
        origin = elem.find("origin")
        if origin is None:
            origin = ET.SubElement(elem, "origin")
        T = np.asarray(T, dtype=np.float64)
        origin.set("xyz", " ".join(repr(float(v)) for v in T[:3, 3]))
        origin.set("rpy", " ".join(repr(float(v)) for v in _matrix_to_rpy(T[:3, :3])))
    # ElementTree keeps comments inside the root only: keep the text before it (declaration, header comment) verbatim.
    start = re.search(r"<robot[\s>]", text)
    prolog = text[: start.start()] if start else '<?xml version="1.0"?>\n'
    return prolog + ET.tostring(root, encoding="unicode") + "\n"


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
