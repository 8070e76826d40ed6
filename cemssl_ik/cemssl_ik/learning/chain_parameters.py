"""The corrections a calibration can identify, as a differentiable forward kinematics, and their
write-back into a chain and a URDF (:mod:`.calibration` fits them to measurements).

Parameters of a chain, in the order :func:`calibration_parameter_names` gives them (the order in
which they are preferred when some of them are redundant):

- ``<joint>.zero`` (rad): joint zero offset, true angle = reading + offset;
- ``<joint>.origin.x|y|z`` (m): added to the joint origin's translation (parent frame);
- ``<joint>.origin.rx|ry|rz`` (rad): the origin's rotation right-multiplied by
  ``Rx(rx) Ry(ry) Rz(rz)`` (small rotations about the joint frame's axes, before the joint turns);
- ``tool.x|y|z`` (m), ``tool.rx|ry|rz`` (rad): a transform after the chain's tip, in the tip frame.

The FK runs in real and complex dtypes, so that the identification can take its Jacobian by the
complex step.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch

from ..kinematics.chain import JointSpec, KinematicChain
from ..kinematics.urdf import read_urdf_text

__all__ = ["ParametrizedChain", "bmm", "calibrated_urdf", "calibration_parameter_names", "with_origins"]

_TRANSLATIONS = ("origin.x", "origin.y", "origin.z")
_ROTATIONS = ("origin.rx", "origin.ry", "origin.rz")
_TOOL = ("tool.x", "tool.y", "tool.z", "tool.rx", "tool.ry", "tool.rz")


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


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched matmul with explicit broadcasting: a (3, 3) matrix broadcast against a batch runs
    as one threaded GEMM that stalls for milliseconds on a busy machine; a batched one does not."""
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return torch.matmul(a.expand(*batch, 3, 3), b.expand(*batch, 3, 3))


def _apply(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """R (..., 3, 3) times t (..., 3), broadcast elementwise (no GEMM)."""
    return (R * t[..., None, :]).sum(-1)


class ParametrizedChain:
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
        R = bmm(T[:3, :3], bmm(_elementary(0, r[:, 0]), bmm(_elementary(1, r[:, 1]), bmm(_elementary(2, r[:, 2]), R_zero))))
        return R, T[:3, 3] + d

    def tool(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tool transform in the tip frame: R (B, 3, 3), t (B, 3)."""
        t = x[:, 7 * self.dof : 7 * self.dof + 6]
        return bmm(_elementary(0, t[:, 3]), bmm(_elementary(1, t[:, 4]), _elementary(2, t[:, 5]))), t[:, :3]

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
                R = bmm(R, bmm(R_o[:, None], R_q[None]))
                k += 1
            else:
                T = self.origins[i].to(x.dtype)
                p = p + _apply(R, T[:3, 3])
                R = bmm(R, T[:3, :3])
        R_t, t_t = self.tool(x)
        return p + _apply(R, t_t[:, None, :]), bmm(R, R_t[:, None])

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


def with_origins(chain: KinematicChain, origins: dict[str, np.ndarray]) -> KinematicChain:
    specs = [JointSpec(j.name, j.type, j.parent, j.child, origins.get(j.name, j.origin), j.axis, j.lower, j.upper, j.velocity) for j in chain.joints]
    return KinematicChain(specs, name=chain.name)


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
