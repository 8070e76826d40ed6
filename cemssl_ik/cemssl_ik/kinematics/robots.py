"""Robots by name, URDF path or URDF text: the shipped UR3 URDF and the papers' generated test chains.

- ``ur3``: Universal Robots UR3 from ``urdf/ur3.urdf`` (default chain ``base_link`` -> ``tool0``).
- ``planarN``: planar N-DoF arm of Schwaiger and Brunner (eq. 1-2), revolute joints about z, unit-sum links.
- ``artificialN``: the alternating chain of Stephan et al. (eq. 1-2): odd joints about x followed by a
  0.01 m limb, even joints about z followed by a 0.15 m limb; limits +-120 deg / +-180 deg.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..resources import find_package_file
from .chain import JointSpec, KinematicChain
from .transforms import origin_to_matrix
from .urdf import chain_from_urdf, read_urdf_text

__all__ = [
    "planar_arm",
    "planar_fk_closed_form",
    "artificial_chain",
    "artificial_transform",
    "shipped_urdf",
    "RobotChain",
    "generated_robot",
    "robot_chain",
    "load_robot",
    "ROBOT_DEFAULT_LINKS",
]

#: default (base, tip) per named URDF robot
ROBOT_DEFAULT_LINKS = {"ur3": ("base_link", "tool0")}

_GENERATED = re.compile(r"(planar|artificial)(\d+)")


def planar_arm(n: int, lengths: Sequence[float] | None = None, limit: float = math.pi) -> KinematicChain:
    """Planar arm with ``n`` revolute joints about z (Schwaiger and Brunner, eq. 1); tip = end of the last link.

    Args:
        n: number of joints (>= 1).
        lengths: n link lengths (metres); default equal links summing to 1 m.
        limit: symmetric joint limit (radians).
    """
    if n < 1:
        raise ValueError(f"a planar arm needs n >= 1 joints, got {n}")
    lengths = [1.0 / n] * n if lengths is None else [float(v) for v in lengths]
    if len(lengths) != n:
        raise ValueError(f"expected {n} link lengths, got {len(lengths)}")
    joints = []
    for i in range(n):
        offset = 0.0 if i == 0 else lengths[i - 1]
        joints.append(
            JointSpec(f"joint{i + 1}", "revolute", f"link{i}", f"link{i + 1}", origin_to_matrix([offset, 0, 0], [0, 0, 0]), [0, 0, 1], -limit, limit)
        )
    joints.append(JointSpec("tip_joint", "fixed", f"link{n}", "tip", origin_to_matrix([lengths[-1], 0, 0], [0, 0, 0])))
    return KinematicChain(joints, name=f"planar{n}")


def planar_fk_closed_form(q: torch.Tensor, lengths: Sequence[float]) -> torch.Tensor:
    """Paper 001 eq. 2: x = cos(q U) l, y = sin(q U) l with U upper-triangular ones. (B, n) -> (B, 2)."""
    n = q.shape[-1]
    U = torch.triu(torch.ones(n, n, dtype=q.dtype, device=q.device))
    l_vec = torch.as_tensor(list(lengths), dtype=q.dtype, device=q.device)
    cum = q @ U
    return torch.stack([torch.cos(cum) @ l_vec, torch.sin(cum) @ l_vec], dim=-1)


def artificial_chain(n: int, limit_scale: float = 1.0) -> KinematicChain:
    """Paper 002's alternating artificial chain with ``n`` joints (eq. 1-3).

    Joint k (1-based) odd: rotation about x after a 0.01 m offset along z, limits +-120 deg;
    even: rotation about z after a 0.15 m offset along z, limits +-180 deg.  ``limit_scale``
    shrinks both ranges as in the paper's Fig. 3.
    """
    if n < 1:
        raise ValueError(f"an artificial chain needs n >= 1 joints, got {n}")
    if not 0.0 < limit_scale <= 1.0:
        raise ValueError(f"limit_scale must be in (0, 1], got {limit_scale}")
    joints = []
    for k in range(1, n + 1):
        odd = k % 2 == 1
        axis, offset, lim = ([1, 0, 0], 0.01, math.radians(120)) if odd else ([0, 0, 1], 0.15, math.pi)
        joints.append(
            JointSpec(f"joint{k}", "revolute", f"link{k - 1}", f"link{k}", origin_to_matrix([0, 0, offset], [0, 0, 0]), axis, -lim * limit_scale, lim * limit_scale)
        )
    return KinematicChain(joints, name=f"artificial{n}")


def artificial_transform(q: np.ndarray) -> np.ndarray:
    """Reference FK of the artificial chain straight from Stephan et al., eq. 1-3 (float64, one sample).

    q: (n,) joint angles -> (4, 4) K_N(q) = prod_k A_k(q_k).
    """
    K = np.eye(4)
    for k, theta in enumerate(np.asarray(q, dtype=np.float64), start=1):
        c, s = math.cos(theta), math.sin(theta)
        if k % 2 == 0:
            A = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0.15], [0, 0, 0, 1]])
        else:
            A = np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0.01], [0, 0, 0, 1]])
        K = K @ A
    return K


def shipped_urdf(name: str) -> str:
    """The URDF text of a robot shipped with the package (a key of :data:`ROBOT_DEFAULT_LINKS`)."""
    if name not in ROBOT_DEFAULT_LINKS:
        raise ValueError(f"no shipped URDF for robot {name!r}; shipped: {sorted(ROBOT_DEFAULT_LINKS)}")
    return find_package_file(f"urdf/{name}.urdf").read_text()


@dataclass(frozen=True)
class RobotChain:
    """A chain and the URDF text it was built from (None for a generated chain such as ``planar3``)."""

    chain: KinematicChain
    urdf: str | None


def generated_robot(name: str) -> bool:
    """Whether ``name`` is a robot built in code from its name alone (``planarN``, ``artificialN``)."""
    return _GENERATED.fullmatch(name) is not None


def robot_chain(robot: str | Path, base_link: str | None = None, tip_link: str | None = None) -> RobotChain:
    """The chain of a robot given by name (``ur3``, ``planar3``, ``artificial7``), URDF path or URDF text.

    Args:
        robot: a shipped robot name, a path to a URDF file, or URDF XML text.
        base_link, tip_link: chain ends; defaults per shipped robot, required for a URDF path or
            text; a generated chain has only its own (given ones must be those).

    Raises:
        ValueError: an unknown robot, or chain ends missing or not those of a generated chain.
        URDFError: the URDF cannot be read or has no such chain.
    """
    text = str(robot)
    m = None if isinstance(robot, Path) else _GENERATED.fullmatch(text)
    if m:
        n = int(m.group(2))
        chain = planar_arm(n) if m.group(1) == "planar" else artificial_chain(n)
        if (base_link or chain.base_link, tip_link or chain.tip_link) != (chain.base_link, chain.tip_link):
            raise ValueError(f"{text} is a generated chain {chain.base_link!r} -> {chain.tip_link!r}; it has no chain {base_link!r} -> {tip_link!r}")
        return RobotChain(chain, None)
    if not isinstance(robot, Path) and text in ROBOT_DEFAULT_LINKS:
        default_base, default_tip = ROBOT_DEFAULT_LINKS[text]
        urdf = shipped_urdf(text)
        return RobotChain(chain_from_urdf(urdf, base_link or default_base, tip_link or default_tip), urdf)
    if isinstance(robot, Path) or text.lstrip().startswith("<") or text.endswith(".urdf") or Path(text).is_file():
        if base_link is None or tip_link is None:
            raise ValueError(f"a URDF needs base and tip links (robot {text[:200]!r})")
        urdf = read_urdf_text(robot)
        return RobotChain(chain_from_urdf(urdf, base_link, tip_link), urdf)
    raise ValueError(f"unknown robot {text[:200]!r}: use 'ur3', 'planarN', 'artificialN', a path to a .urdf file or URDF text")


def load_robot(name: str | Path, base_link: str | None = None, tip_link: str | None = None) -> KinematicChain:
    """The chain of :func:`robot_chain`: a robot by name (``ur3``, ``planar3``, ``artificial7``), URDF path or text."""
    return robot_chain(name, base_link, tip_link).chain
