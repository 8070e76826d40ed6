"""URDF -> :class:`KinematicChain`, parsed with ``urdf_parser_py`` (urdfdom-py).

The builder imports the chain, never the other way round: FK needs no XML parser.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
from pathlib import Path

import numpy as np

from .chain import JointSpec, KinematicChain
from .transforms import origin_to_matrix

__all__ = ["URDFError", "chain_from_urdf", "read_urdf_text", "fixed_transform"]


class URDFError(ValueError):
    """A URDF could not be parsed, or the requested chain does not exist in it."""


def read_urdf_text(urdf: str | Path) -> str:
    """Return URDF XML text given either a file path or the XML itself."""
    if isinstance(urdf, Path) or not str(urdf).lstrip().startswith("<"):
        path = Path(urdf)
        if not path.is_file():
            raise URDFError(f"URDF file not found: {str(path)!r} (pass a path to a .urdf file or the XML text)")
        return path.read_text()
    return str(urdf)


def _parse(xml: str):
    from urdf_parser_py.urdf import URDF

    # urdf_parser_py reports unknown tags on stderr; keep that noise out of callers' output.
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return URDF.from_xml_string(xml)
        except Exception as exc:  # the parser raises assorted types (lxml, AssertionError, ParseError)
            raise URDFError(f"could not parse URDF: {exc}") from exc


def _joint_spec(joint, reverse: bool) -> JointSpec:
    xyz = joint.origin.xyz if joint.origin is not None and joint.origin.xyz is not None else [0.0, 0.0, 0.0]
    rpy = joint.origin.rpy if joint.origin is not None and joint.origin.rpy is not None else [0.0, 0.0, 0.0]
    origin = origin_to_matrix(xyz, rpy)
    if reverse:
        # Walking a fixed joint child -> parent: use the inverse transform.
        inv = np.eye(4)
        inv[:3, :3] = origin[:3, :3].T
        inv[:3, 3] = -origin[:3, :3].T @ origin[:3, 3]
        return JointSpec(joint.name, "fixed", joint.child, joint.parent, inv)
    jtype = joint.type
    if jtype == "fixed":
        return JointSpec(joint.name, "fixed", joint.parent, joint.child, origin)
    if jtype not in ("revolute", "continuous", "prismatic"):
        raise URDFError(f"joint {joint.name!r} has type {jtype!r}; only revolute, continuous, prismatic and fixed joints are supported in a serial chain")
    axis = joint.axis if joint.axis is not None else [1.0, 0.0, 0.0]  # URDF default axis
    lower, upper, velocity = -math.inf, math.inf, math.inf
    if joint.limit is not None:
        velocity = float(joint.limit.velocity) if joint.limit.velocity is not None else math.inf
        if jtype != "continuous":
            lower = float(joint.limit.lower) if joint.limit.lower is not None else 0.0
            upper = float(joint.limit.upper) if joint.limit.upper is not None else 0.0
    elif jtype != "continuous":
        raise URDFError(f"joint {joint.name!r} ({jtype}) has no <limit>; URDF requires one for revolute and prismatic joints")
    try:
        return JointSpec(joint.name, jtype, joint.parent, joint.child, origin, np.asarray(axis, float), lower, upper, velocity)
    except ValueError as exc:
        raise URDFError(str(exc)) from exc


def fixed_transform(urdf: str | Path, from_link: str, to_link: str) -> np.ndarray:
    """(4, 4) transform from_link <- to_link for links joined by fixed joints only.

    E.g. UR ``base_link`` <- ``base``.  Raises URDFError if a movable joint lies between them.
    """
    if from_link == to_link:
        return np.eye(4)
    _, specs = _path_specs(read_urdf_text(urdf), from_link, to_link)
    moving = [s.name for s in specs if s.movable]
    if moving:
        raise URDFError(f"{from_link!r} and {to_link!r} are joined by movable joint(s) {moving}, not a fixed transform")
    T = np.eye(4)
    for s in specs:
        T = T @ s.origin
    return T


def chain_from_urdf(urdf: str | Path, base_link: str, tip_link: str) -> KinematicChain:
    """Build the serial chain from ``base_link`` to ``tip_link`` of a URDF (a file path or the XML text itself).

    The path may go up from ``base_link`` through fixed joints before going down to
    ``tip_link`` (e.g. the UR ``base`` frame, a child of ``base_link``); movable joints must be
    traversed parent -> child.

    Raises:
        URDFError: the text is not a valid URDF, a link is unknown, or no such chain exists.
    """
    xml = read_urdf_text(urdf)
    robot_name, specs = _path_specs(xml, base_link, tip_link)
    if not specs or not any(s.movable for s in specs):
        raise URDFError(f"no movable joint between {base_link!r} and {tip_link!r}")
    digest = hashlib.sha256(xml.encode()).hexdigest()
    return KinematicChain(specs, name=robot_name, source_hash=digest)


def _path_specs(xml: str, base_link: str, tip_link: str) -> tuple[str, list[JointSpec]]:
    """Robot name and joint specs along the tree path base_link -> tip_link (fixed joints may be walked upwards)."""
    robot = _parse(xml)
    links = {link.name for link in robot.links}
    for role, name in (("base", base_link), ("tip", tip_link)):
        if name not in links:
            raise URDFError(f"unknown {role} link {name!r}; the URDF's links are: {sorted(links)}")
    parent_joint = {j.child: j for j in robot.joints}

    def ancestors(link: str) -> list[str]:
        path = [link]
        while path[-1] in parent_joint:
            path.append(parent_joint[path[-1]].parent)
            if len(path) > len(links) + 1:
                raise URDFError("the URDF's joints form a cycle")
        return path

    up_from_base, up_from_tip = ancestors(base_link), ancestors(tip_link)
    common = next((link for link in up_from_base if link in set(up_from_tip)), None)
    if common is None:
        raise URDFError(f"links {base_link!r} and {tip_link!r} are not connected in the URDF")
    specs: list[JointSpec] = []
    for link in up_from_base[: up_from_base.index(common)]:  # base upwards to the common ancestor
        joint = parent_joint[link]
        if joint.type != "fixed":
            raise URDFError(
                f"the path from {base_link!r} to {tip_link!r} goes up through movable joint {joint.name!r}; "
                "choose a base link that is an ancestor of the tip (or connected to one by fixed joints only)"
            )
        specs.append(_joint_spec(joint, reverse=True))
    down = up_from_tip[: up_from_tip.index(common)]
    for link in reversed(down):  # common ancestor downwards to the tip
        specs.append(_joint_spec(parent_joint[link], reverse=False))
    return robot.name or "robot", specs
