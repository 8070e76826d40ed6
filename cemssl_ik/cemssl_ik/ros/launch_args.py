"""Launch-argument handling shared by the launch files, as pure functions (no launch import).

The launch files resolve their arguments in an ``OpaqueFunction`` and call these, so the rules
(which value wins, how booleans are spelled, which flag a distro's UR driver takes) are tested
without the launch system.
"""

from __future__ import annotations

from typing import Mapping

__all__ = ["parse_bool", "node_parameters", "mock_hardware_argument", "robot_interface", "LOG_LEVELS", "check_log_level"]

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def parse_bool(name: str, value: str) -> bool:
    """A launch argument spelled true/false (also 1/0, yes/no, on/off; any case) -> bool.

    Raises:
        ValueError: any other spelling, naming the argument.
    """
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"launch argument {name}:={value!r} must be true or false")


def check_log_level(value: str) -> str:
    """The ``log_level`` argument, checked against the levels rcl knows."""
    v = str(value).strip().lower()
    if v not in LOG_LEVELS:
        raise ValueError(f"launch argument log_level:={value!r} must be one of {', '.join(LOG_LEVELS)}")
    return v


def node_parameters(params_file: str, use_sim_time: str, overrides: Mapping[str, str] | None = None) -> list:
    """The ``parameters=`` list of a node: its params file, then what the launch arguments set.

    An override whose argument was left empty ('') is not passed, so the params file's value
    stands: a user's ``model:`` in their own params file is not replaced by a launch default.

    Args:
        params_file: path of the node's YAML (keyed ``/**`` so it applies under any namespace).
        use_sim_time: the ``use_sim_time`` launch argument (true / false).
        overrides: parameter name -> launch-argument value ('' = not given).

    Returns:
        ``[params_file, {"use_sim_time": bool, name: value, ...}]``.
    """
    explicit: dict[str, object] = {"use_sim_time": parse_bool("use_sim_time", use_sim_time)}
    for name, value in (overrides or {}).items():
        if value != "":
            explicit[name] = value
    return [params_file, explicit] if params_file else [explicit]


def mock_hardware_argument(distro: str) -> str:
    """Name of ur_robot_driver's mock-hardware launch argument on a ROS distro.

    Humble's driver takes ``use_fake_hardware``; Iron, Jazzy and later renamed it
    ``use_mock_hardware``.  An unknown or empty distro is taken as a current one.
    """
    return "use_fake_hardware" if distro.strip().lower() in ("foxy", "galactic", "humble") else "use_mock_hardware"


def robot_interface(setup: str, path: str) -> dict[str, str]:
    """The learner's controller, pose source and pose topic for a kind of arm, from config/controllers.yaml.

    Raises:
        ValueError: a setup the file does not define, or an entry without the three keys.
    """
    import yaml

    with open(path) as f:
        table = yaml.safe_load(f)
    if setup not in table:
        raise ValueError(f"setup:={setup!r} is not one of {sorted(table)} ({path})")
    entry = table[setup]
    keys = {"controller", "pose_source", "pose_topic"}
    if not isinstance(entry, dict) or set(entry) != keys:
        raise ValueError(f"{path}: {setup} must have exactly {sorted(keys)}")
    return {k: str(entry[k]) for k in sorted(keys)}
