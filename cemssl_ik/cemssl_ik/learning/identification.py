"""Kinematic identification: the chain a real arm is, from measured (joints, tool pose) pairs.

:func:`identify_chain` fits, by nonlinear least squares (Levenberg-Marquardt, scipy's MINPACK
``lm``) through a differentiable FK of the parametrized chain, corrections to the nominal chain:
per movable joint an origin translation (3) and rotation (3, a rotation vector) and a zero offset
(1), and a tool offset (translation and rotation, 6).  Many of these cannot be told apart by
any data (a zero offset and a rotation about the same axis; translations along a joint axis
shared with the next joint; the tool rotation from position-only measurements): the columns of
the Jacobian at the nominal chain are ranked by QR with column pivoting, those whose pivot falls
below ``rank_tolerance`` times the largest are held at zero, and their names are reported.

:func:`read_ur_calibration` reads the ``kinematics:`` block of a UR calibration YAML
(ur_description's ``default_kinematics.yaml`` format, as ``ur_calibration`` writes it for a real
arm): each of ``shoulder``, ``upper_arm``, ``forearm``, ``wrist_1``, ``wrist_2``, ``wrist_3`` is the
origin (x y z, roll pitch yaw) of one of the six UR joints.

Both give a :class:`KinematicChain` and its URDF text (the nominal URDF with the chain's joint
origins rewritten), for training (``AnalyticForwardModel(chain)``) and for the IK service.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..kinematics.chain import JointSpec, KinematicChain
from ..kinematics.transforms import quaternion_to_matrix, rpy_to_matrix

__all__ = ["IdentificationResult", "identify_chain", "chain_with_origins", "read_ur_calibration", "urdf_with_chain", "matrix_to_rpy", "identify_for_learner", "calibration_file_for_learner"]

#: UR calibration YAML entries, in joint order
UR_CALIBRATION_KEYS = ("shoulder", "upper_arm", "forearm", "wrist_1", "wrist_2", "wrist_3")
UR_JOINTS = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint", "wrist_3_joint")
_PER_JOINT = ("origin.x", "origin.y", "origin.z", "origin.rx", "origin.ry", "origin.rz", "zero")
_TOOL = ("tool.x", "tool.y", "tool.z", "tool.rx", "tool.ry", "tool.rz")


@dataclass(frozen=True)
class IdentificationResult:
    """Outcome of :func:`identify_chain`.

    Attributes:
        chain: the identified chain (same names, links and limits as the nominal one).
        parameters: name -> fitted correction (metres / radians); unidentifiable ones are 0.
        unidentifiable: names of the corrections the data cannot determine (held at 0).
        residual_before_mm, residual_after_mm: mean position residual of the samples (mm).
        rotation_residual_after_deg: mean orientation residual after (deg; NaN position-only).
        iterations: function evaluations of the solver.
        samples: measurements used.
    """

    chain: KinematicChain
    parameters: dict[str, float]
    unidentifiable: list[str]
    residual_before_mm: float
    residual_after_mm: float
    rotation_residual_after_deg: float
    iterations: int
    samples: int
    report: dict = field(default_factory=dict)


def _rotvec_matrix(w: torch.Tensor) -> torch.Tensor:
    """(3,) rotation vector -> (3, 3), differentiable (also at 0)."""
    theta2 = (w * w).sum()
    K = torch.zeros(3, 3, dtype=w.dtype)
    K = K.index_put((torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([1, 2, 0, 2, 0, 1])), torch.stack([-w[2], w[1], w[2], -w[0], -w[1], w[0]]))
    # sin(t)/t and (1-cos t)/t^2 by their series near 0 (exact enough below 1e-4 rad)
    small = theta2 < 1e-8
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta * theta))
    return torch.eye(3, dtype=w.dtype) + a * K + b * (K @ K)


class _ParametrizedChain:
    """FK of the nominal chain with corrections ``x`` (7 per movable joint + 6 tool), in torch."""

    def __init__(self, chain: KinematicChain) -> None:
        self.chain = chain
        self.joints = list(chain.joints)
        self.movable = [i for i, j in enumerate(self.joints) if j.movable]
        self.names = [f"{self.joints[i].name}.{p}" for i in self.movable for p in _PER_JOINT] + list(_TOOL)
        self.n = len(self.names)
        if any(self.joints[i].type == "prismatic" for i in self.movable):
            raise ValueError("identification supports revolute / continuous joints only")

    def origins(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Corrected (4, 4) origins of every joint (the last fixed joint carries the tool offset)."""
        out = []
        k = 0
        for i, j in enumerate(self.joints):
            T = torch.as_tensor(j.origin, dtype=x.dtype).clone()
            if j.movable:
                d = x[7 * k : 7 * k + 7]
                R = T[:3, :3] @ _rotvec_matrix(d[3:6]) @ _rotvec_matrix(torch.as_tensor(j.axis, dtype=x.dtype) * d[6])
                T = torch.cat([torch.cat([R, (T[:3, 3] + d[:3])[:, None]], 1), T[3:]], 0)
                k += 1
            out.append(T)
        tool = x[7 * k : 7 * k + 6]
        T_tool = torch.cat([torch.cat([_rotvec_matrix(tool[3:]), tool[:3, None]], 1), torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=x.dtype)], 0)
        out.append(T_tool)  # after the last joint
        return out

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, dof) joints -> (N, 3) positions, (N, 3, 3) rotations."""
        origins = self.origins(x)
        N = q.shape[0]
        T = torch.eye(4, dtype=x.dtype).expand(N, 4, 4)
        k = 0
        for i, j in enumerate(self.joints):
            T = T @ origins[i]
            if j.movable:
                axis = torch.as_tensor(j.axis, dtype=x.dtype)
                K = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=x.dtype)
                s, c = torch.sin(q[:, k])[:, None, None], torch.cos(q[:, k])[:, None, None]
                R = torch.eye(3, dtype=x.dtype) + s * K + (1 - c) * (K @ K)
                J = torch.zeros(N, 4, 4, dtype=x.dtype)
                J[:, :3, :3] = R
                J[:, 3, 3] = 1.0
                T = T @ J
                k += 1
        T = T @ origins[-1]
        return T[:, :3, 3], T[:, :3, :3]

    def to_chain(self, x: np.ndarray) -> KinematicChain:
        xt = torch.as_tensor(x, dtype=torch.float64)
        origins = [o.numpy() for o in self.origins(xt)]
        specs = []
        for i, j in enumerate(self.joints):
            origin = origins[i]
            if i == len(self.joints) - 1:
                origin = origin @ origins[-1]  # the tool offset folded into the last joint
            specs.append(JointSpec(j.name, j.type, j.parent, j.child, origin, j.axis, j.lower, j.upper, j.velocity))
        if not self.joints[-1].type == "fixed":
            raise ValueError("identification needs a fixed last joint (the tool frame) to carry the tool offset")
        out = KinematicChain(specs, name=self.chain.name)
        return out


def chain_with_origins(chain: KinematicChain, origins: dict[str, np.ndarray]) -> KinematicChain:
    """``chain`` with the named joints' (4, 4) origins replaced."""
    unknown = set(origins) - {j.name for j in chain.joints}
    if unknown:
        raise ValueError(f"joints {sorted(unknown)} are not on the chain {[j.name for j in chain.joints]}")
    specs = [JointSpec(j.name, j.type, j.parent, j.child, np.asarray(origins.get(j.name, j.origin)), j.axis, j.lower, j.upper, j.velocity) for j in chain.joints]
    return KinematicChain(specs, name=chain.name)


def identify_chain(
    chain: KinematicChain,
    q: np.ndarray,
    position: np.ndarray,
    quaternion: np.ndarray | None = None,
    rotation_weight: float = 0.1,
    rank_tolerance: float = 1e-6,
) -> IdentificationResult:
    """Fit the chain's corrections to measured samples (see the module docstring).

    Args:
        chain: the nominal chain.
        q: (N, dof) measured joints, radians.
        position: (N, 3) measured tool positions, metres, chain base frame.
        quaternion: (N, 4) measured tool orientations (x y z w), or None / NaN rows for
            position-only measurements.
        rotation_weight: metres per radian of orientation residual (0.1: 1 mrad counts as 0.1 mm).
        rank_tolerance: pivots below this fraction of the largest are unidentifiable.

    Raises:
        ValueError: shapes, non-finite values, or fewer samples than identifiable parameters.
    """
    from scipy.linalg import qr
    from scipy.optimize import least_squares

    q = np.asarray(q, dtype=np.float64)
    position = np.asarray(position, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != chain.dof or position.shape != (len(q), 3):
        raise ValueError(f"q must be (N, {chain.dof}) and position (N, 3), got {q.shape} and {position.shape}")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(position))):
        raise ValueError("measured joints and positions must be finite")
    use_rot = quaternion is not None and np.all(np.isfinite(np.asarray(quaternion, dtype=np.float64)))
    model = _ParametrizedChain(chain)
    qt, pt = torch.as_tensor(q), torch.as_tensor(position)
    Rt = torch.as_tensor(quaternion_to_matrix(np.asarray(quaternion, dtype=np.float64))) if use_rot else None
    w = math.sqrt(rotation_weight)

    def residual_t(x: torch.Tensor) -> torch.Tensor:
        p, R = model.forward(x, qt)
        r = [(p - pt).reshape(-1)]
        if Rt is not None:
            E = Rt.transpose(1, 2) @ R  # measured^-1 * model: small rotation
            r.append(w * 0.5 * torch.stack([E[:, 2, 1] - E[:, 1, 2], E[:, 0, 2] - E[:, 2, 0], E[:, 1, 0] - E[:, 0, 1]], 1).reshape(-1))
        return torch.cat(r)

    x0 = torch.zeros(model.n, dtype=torch.float64)
    J0 = _jacobian(residual_t, x0)
    _, R, piv = qr(J0, mode="economic", pivoting=True)
    diag = np.abs(np.diag(R))  # (min(rows, parameters),)
    keep = piv[: len(diag)][diag > rank_tolerance * diag[0]]
    free = np.zeros(model.n, dtype=bool)
    free[keep] = True
    rows = J0.shape[0]
    if rows < 2 * free.sum() or rows < 2 * min(model.n, 25):
        raise ValueError(f"{len(q)} samples cannot determine the {int(free.sum())}+ parameters they constrain with margin; measure at least {max(7, math.ceil(50 / (rows / len(q))))}")

    def full(xf: np.ndarray) -> torch.Tensor:
        x = torch.zeros(model.n, dtype=torch.float64)
        x[torch.as_tensor(free)] = torch.as_tensor(xf)
        return x

    def fun(xf: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return residual_t(full(xf)).numpy()

    def jac(xf: np.ndarray) -> np.ndarray:
        return _jacobian(residual_t, full(xf))[:, free]

    before = fun(np.zeros(int(free.sum())))
    sol = least_squares(fun, np.zeros(int(free.sum())), jac=jac, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=200)
    x = full(sol.x).numpy()
    after = sol.fun
    n = len(q)
    pos_before = np.linalg.norm(before[: 3 * n].reshape(n, 3), axis=1).mean() * 1e3
    pos_after = np.linalg.norm(after[: 3 * n].reshape(n, 3), axis=1).mean() * 1e3
    rot_after = math.degrees(np.linalg.norm(after[3 * n :].reshape(n, 3), axis=1).mean() / w) if use_rot else math.nan
    identified = model.to_chain(x)
    names = model.names
    return IdentificationResult(
        chain=identified,
        parameters={names[i]: float(x[i]) for i in range(model.n)},
        unidentifiable=[names[i] for i in range(model.n) if not free[i]],
        residual_before_mm=float(pos_before),
        residual_after_mm=float(pos_after),
        rotation_residual_after_deg=float(rot_after),
        iterations=int(sol.nfev),
        samples=n,
    )


def _jacobian(f, x: torch.Tensor) -> np.ndarray:
    """(residuals, parameters) Jacobian: forward mode, one vectorized pass over all parameters."""
    return torch.autograd.functional.jacobian(f, x, vectorize=True, strategy="forward-mode").numpy()


def matrix_to_rpy(R: np.ndarray) -> tuple[float, float, float]:
    """(3, 3) rotation -> URDF roll, pitch, yaw (R = Rz(yaw) Ry(pitch) Rx(roll))."""
    R = np.asarray(R, dtype=np.float64)
    pitch = math.atan2(-R[2, 0], math.hypot(R[0, 0], R[1, 0]))
    if abs(math.cos(pitch)) > 1e-9:
        roll = math.atan2(R[2, 1], R[2, 2])
        yaw = math.atan2(R[1, 0], R[0, 0])
    else:  # gimbal lock: yaw absorbs roll
        roll = 0.0
        yaw = math.atan2(-R[0, 1], R[1, 1])
    return roll, pitch, yaw


def urdf_with_chain(urdf_text: str, chain: KinematicChain) -> str:
    """The URDF with the origins of ``chain``'s joints rewritten from the chain (everything else kept).

    Raises:
        ValueError: a chain joint missing from the URDF.
    """
    root = ET.fromstring(urdf_text)
    by_name = {j.get("name"): j for j in root.iter("joint")}
    for spec in chain.joints:
        elem = by_name.get(spec.name)
        if elem is None:
            raise ValueError(f"joint {spec.name!r} is not in the URDF")
        origin = elem.find("origin")
        if origin is None:
            origin = ET.SubElement(elem, "origin")
        origin.set("xyz", " ".join(repr(float(v)) for v in spec.origin[:3, 3]))
        origin.set("rpy", " ".join(repr(float(v)) for v in matrix_to_rpy(spec.origin[:3, :3])))
    return ET.tostring(root, encoding="unicode")


def read_ur_calibration(path: str | Path, chain: KinematicChain, max_bytes: int = 65536) -> KinematicChain:
    """A UR calibration YAML (``kinematics:`` block) applied to a UR chain's six joints.

    Raises:
        ValueError: a file that is too large, not YAML, lacks an entry or a field, or holds
            non-finite numbers; a chain without the six UR joints.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"calibration file {path} does not exist")
    if path.stat().st_size > max_bytes:
        raise ValueError(f"calibration file {path} is larger than {max_bytes} bytes")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"calibration file {path} is not YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("kinematics"), dict):
        raise ValueError(f"calibration file {path} has no 'kinematics:' block")
    kin = data["kinematics"]
    names = [j.name for j in chain.joints]
    prefix = next((n[: -len(UR_JOINTS[0])] for n in names if n.endswith(UR_JOINTS[0])), None)
    if prefix is None or any(prefix + j not in names for j in UR_JOINTS):
        raise ValueError(f"the chain has no UR joints {UR_JOINTS} (with one prefix): {names}")
    origins = {}
    for key, joint in zip(UR_CALIBRATION_KEYS, UR_JOINTS):
        entry = kin.get(key)
        if not isinstance(entry, dict):
            raise ValueError(f"calibration file {path}: kinematics.{key} missing")
        values = []
        for f in ("x", "y", "z", "roll", "pitch", "yaw"):
            v = entry.get(f)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"calibration file {path}: kinematics.{key}.{f} must be a finite number, got {v!r}")
            values.append(float(v))
        T = np.eye(4)
        T[:3, :3] = rpy_to_matrix(values[3:])
        T[:3, 3] = values[:3]
        origins[prefix + joint] = T
    return chain_with_origins(chain, origins)


def _package_urdf() -> str:
    from ..kinematics.robots import find_package_file

    return find_package_file("urdf/ur3.urdf").read_text()


def identify_for_learner(chain: KinematicChain, q: np.ndarray, position: np.ndarray, quaternion: np.ndarray | None):
    """The learner's ``identify``: (identified chain, its URDF text, a JSON-able report)."""
    quat = quaternion if quaternion is not None and np.all(np.isfinite(quaternion)) else None
    res = identify_chain(chain, q, position, quat)
    report = {
        "samples": res.samples,
        "residual_before_mm": res.residual_before_mm,
        "residual_after_mm": res.residual_after_mm,
        "rotation_residual_after_deg": res.rotation_residual_after_deg,
        "unidentifiable": res.unidentifiable,
        "corrections": {k: v for k, v in res.parameters.items() if v != 0.0},
    }
    return res.chain, urdf_with_chain(_package_urdf(), res.chain), report


def calibration_file_for_learner(chain: KinematicChain, path: str):
    """The learner's ``read_calibration``: (calibrated chain, its URDF text)."""
    calibrated = read_ur_calibration(path, chain)
    return calibrated, urdf_with_chain(_package_urdf(), calibrated)
