"""Robots by name: the shipped UR3 URDF and the papers' programmatic test chains.

- ``ur3``: Universal Robots UR3 from ``urdf/ur3.urdf`` (default chain ``base_link`` -> ``tool0``).
- ``planarN``: planar N-DoF arm of paper 001 (eq. 1-2), revolute joints about z, unit-sum links.
- ``artificialN``: the alternating chain of paper 002 (eq. 1-2): odd joints about x followed by a
  0.01 m limb, even joints about z followed by a 0.15 m limb; limits +-120 deg / +-180 deg.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .chain import JointSpec, KinematicChain
from .transforms import origin_to_matrix

__all__ = [
    "planar_arm",
    "planar_fk_closed_form",
    "artificial_chain",
    "artificial_transform",
    "find_package_file",
    "load_robot",
    "ROBOT_DEFAULT_LINKS",
]

#: default (base, tip) per named URDF robot
ROBOT_DEFAULT_LINKS = {"ur3": ("base_link", "tool0")}


def find_package_file(relative: str) -> Path:
    """Locate a data file of the cemssl_ik package (``urdf/ur3.urdf``, ``config/...``).

    Looks in the source tree first (editable / development installs), then in the ament share
    directory of an installed package.
    """
    source = Path(__file__).resolve().parents[2] / relative
    if source.exists():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        shared = Path(get_package_share_directory("cemssl_ik")) / relative
        if shared.exists():
            return shared
    except Exception:  # ament index absent or package not installed through colcon
        pass
    raise FileNotFoundError(f"cemssl_ik data file {relative!r} not found in the source tree or the ament share directory")


def planar_arm(n: int, lengths: Sequence[float] | None = None, limit: float = math.pi) -> KinematicChain:
    """Planar arm with ``n`` revolute joints about z (paper 001 eq. 1); tip = end of the last link.

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
    """Reference FK of the artificial chain straight from paper 002 eq. 1-3 (float64, one sample).

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


def load_robot(name: str, base_link: str | None = None, tip_link: str | None = None) -> KinematicChain:
    """A chain by robot name (``ur3``, ``planar3``, ``artificial7``) or by URDF path.

    Args:
        name: a known robot name, or a path to a URDF file.
        base_link, tip_link: chain ends for URDF robots (defaults per robot; required for a path).
    """
    m = re.fullmatch(r"(planar|artificial)(\d+)", name)
    if m:
        if base_link is not None or tip_link is not None:
            raise ValueError(f"{name} is a programmatic chain; it takes no base/tip link")
        n = int(m.group(2))
        return planar_arm(n) if m.group(1) == "planar" else artificial_chain(n)
    if name in ROBOT_DEFAULT_LINKS:
        default_base, default_tip = ROBOT_DEFAULT_LINKS[name]
        urdf = find_package_file(f"urdf/{name}.urdf")
        return KinematicChain.from_urdf(urdf, base_link or default_base, tip_link or default_tip)
    path = Path(name)
    if path.suffix == ".urdf" or path.is_file():
        if base_link is None or tip_link is None:
            raise ValueError(f"a URDF path needs --base and --tip links (robot {name!r})")
        return KinematicChain.from_urdf(path, base_link, tip_link)
    raise ValueError(f"unknown robot {name!r}: use 'ur3', 'planarN', 'artificialN' or a path to a .urdf file")
