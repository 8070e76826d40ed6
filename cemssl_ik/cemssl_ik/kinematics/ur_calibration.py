"""UR calibration files (ur_description ``default_kinematics.yaml`` / ``ur_calibration`` output) -> chains.

A UR controller holds a factory calibration; ``ur_calibration`` extracts it as a YAML whose
``kinematics:`` block ur_description's xacro takes as ``kinematics_params_file``.  In
ur_description's ``urdf/ur_macro.xacro`` (via ``urdf/inc/ur_common.xacro``) each of the six entries
is the ``<origin xyz="x y z" rpy="roll pitch yaw">`` of one joint:

=============  ======================
YAML entry     URDF joint
=============  ======================
``shoulder``   ``shoulder_pan_joint`` (parent ``base_link_inertia``)
``upper_arm``  ``shoulder_lift_joint``
``forearm``    ``elbow_joint``
``wrist_1``    ``wrist_1_joint``
``wrist_2``    ``wrist_2_joint``
``wrist_3``    ``wrist_3_joint``
=============  ======================

plus a ``hash`` string identifying the calibration.  Units: metres and radians (URDF rpy: fixed
axes x, y, z, i.e. ``R = Rz(yaw) Ry(pitch) Rx(roll)``).  Everything else of the chain (the
``base_link -> base_link_inertia`` and ``wrist_3 -> flange -> tool0`` fixed joints, limits) is
taken from the nominal chain, as the xacro does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .chain import JointSpec, KinematicChain
from .transforms import origin_to_matrix

__all__ = ["UR_CALIBRATION_JOINTS", "URCalibration", "parse_ur_calibration", "load_ur_calibration", "apply_ur_calibration"]

#: YAML entry -> URDF joint (without tf_prefix), in chain order.
UR_CALIBRATION_JOINTS: dict[str, str] = {
    "shoulder": "shoulder_pan_joint",
    "upper_arm": "shoulder_lift_joint",
    "forearm": "elbow_joint",
    "wrist_1": "wrist_1_joint",
    "wrist_2": "wrist_2_joint",
    "wrist_3": "wrist_3_joint",
}
_FIELDS = ("x", "y", "z", "roll", "pitch", "yaw")
#: A calibration file is a few hundred bytes; anything this large is not one.
MAX_CALIBRATION_BYTES = 65536
#: Metres; no UR joint origin is anywhere near this far from its parent.
_MAX_TRANSLATION = 10.0


@dataclass(frozen=True)
class URCalibration:
    """The ``kinematics:`` block of a UR calibration file.

    Attributes:
        origins: YAML entry (``shoulder`` ... ``wrist_3``) -> (x, y, z, roll, pitch, yaw), metres
            and radians: the origin of the corresponding joint (see :data:`UR_CALIBRATION_JOINTS`).
        hash: the file's ``hash`` string ("" when the file has none).
    """

    origins: dict[str, tuple[float, float, float, float, float, float]]
    hash: str = ""

    def origin_matrices(self, tf_prefix: str = "") -> dict[str, np.ndarray]:
        """URDF joint name (with ``tf_prefix``) -> (4, 4) origin transform parent <- joint."""
        return {tf_prefix + UR_CALIBRATION_JOINTS[k]: origin_to_matrix(v[:3], v[3:]) for k, v in self.origins.items()}


def parse_ur_calibration(text: str, source: str = "calibration") -> URCalibration:
    """Parse and validate the text of a UR calibration YAML (``yaml.safe_load`` only).

    Args:
        text: the file's text, at most :data:`MAX_CALIBRATION_BYTES` bytes (UTF-8).
        source: how to name the input in error messages (e.g. its path).

    Raises:
        ValueError: too large, not YAML, no ``kinematics:`` mapping, a missing or unknown entry or
            field, a value that is not a finite number (booleans and strings are refused), a
            translation beyond 10 m, or a ``hash`` that is not a string.
    """
    import yaml

    if not isinstance(text, str):
        raise TypeError(f"{source}: expected the YAML text as str, got {type(text).__name__}")
    if len(text.encode("utf-8", errors="replace")) > MAX_CALIBRATION_BYTES:
        raise ValueError(f"{source}: larger than {MAX_CALIBRATION_BYTES} bytes; a UR calibration file is a few hundred")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or set(data) != {"kinematics"}:
        keys = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{source}: expected one top-level key 'kinematics:' (ur_description default_kinematics.yaml format), got {keys}")
    kin = data["kinematics"]
    if not isinstance(kin, dict):
        raise ValueError(f"{source}: 'kinematics' must be a mapping of {list(UR_CALIBRATION_JOINTS)} and 'hash', got {type(kin).__name__}")
    keys = {str(k) for k in kin}
    missing = [k for k in UR_CALIBRATION_JOINTS if k not in kin]
    unknown = sorted(keys - set(UR_CALIBRATION_JOINTS) - {"hash"})
    if missing or unknown:
        raise ValueError(f"{source}: kinematics needs exactly the entries {list(UR_CALIBRATION_JOINTS)} (+ 'hash'); missing {missing}, unknown {unknown}")
    digest = kin.get("hash", "")
    if not isinstance(digest, str):
        raise ValueError(f"{source}: kinematics.hash must be a string, got {type(digest).__name__}")
    origins = {}
    for key in UR_CALIBRATION_JOINTS:
        entry = kin[key]
        if not isinstance(entry, dict) or {str(f) for f in entry} != set(_FIELDS):
            got = sorted(map(str, entry)) if isinstance(entry, dict) else type(entry).__name__
            raise ValueError(f"{source}: kinematics.{key} must have exactly the fields {list(_FIELDS)}, got {got}")
        values = []
        for f in _FIELDS:
            v = entry[f]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{source}: kinematics.{key}.{f} must be a finite number (metres / radians), got {v!r}")
            values.append(float(v))
        if max(abs(v) for v in values[:3]) > _MAX_TRANSLATION:
            raise ValueError(f"{source}: kinematics.{key} translation {values[:3]} m is beyond {_MAX_TRANSLATION} m; is this a UR calibration?")
        origins[key] = tuple(values)
    return URCalibration(origins=origins, hash=digest)  # type: ignore[arg-type]


def load_ur_calibration(path: str | Path) -> URCalibration:
    """Read and validate a UR calibration YAML file (see :func:`parse_ur_calibration`).

    Raises:
        ValueError: the file does not exist, is too large or is not a valid calibration.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"calibration file {str(path)!r} not found (give the path of a ur_calibration / default_kinematics.yaml file)")
    if path.stat().st_size > MAX_CALIBRATION_BYTES:
        raise ValueError(f"{path}: larger than {MAX_CALIBRATION_BYTES} bytes; a UR calibration file is a few hundred")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc})") from None
    return parse_ur_calibration(text, source=str(path))


def apply_ur_calibration(chain: KinematicChain, calibration: URCalibration, tf_prefix: str = "") -> KinematicChain:
    """``chain`` (a UR chain, e.g. ``load_robot("ur3")``) with its six joint origins from ``calibration``.

    Args:
        chain: nominal chain containing the joints ``tf_prefix + shoulder_pan_joint`` ... ``wrist_3_joint``
            walked parent -> child.
        calibration: parsed calibration.
        tf_prefix: the joint name prefix of the chain (ur_description's ``tf_prefix``).

    Returns:
        A new chain: same joints, links, axes and limits; the six origins replaced.

    Raises:
        ValueError: a UR joint is missing from the chain.
    """
    origins = calibration.origin_matrices(tf_prefix)
    by_name = {j.name: j for j in chain.joints}
    missing = [n for n in origins if n not in by_name or not by_name[n].movable]
    if missing:
        raise ValueError(f"chain {chain.name!r} lacks the UR joints {missing} (tf_prefix={tf_prefix!r}); its joints are {[j.name for j in chain.joints]}")
    specs = [JointSpec(j.name, j.type, j.parent, j.child, origins.get(j.name, j.origin), j.axis, j.lower, j.upper, j.velocity) for j in chain.joints]
    return KinematicChain(specs, name=chain.name)
