"""Load a model for a robot: the checkpoint, the chain it is used on, and its parsed metadata.

The one place that turns "model NAME, robot R, base B, tip T" into a verified model and chain, for
the CLI, the IK service node and the learner: the checkpoint's metadata is read first (no weights),
the chain is built from the robot given or, by default, the checkpoint's own robot, and the weights
are then read once, verified against that chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..kinematics.chain import KinematicChain
from ..kinematics.robots import ROBOT_DEFAULT_LINKS, RobotChain, generated_robot, robot_chain
from .checkpoint import CheckpointInfo, checkpoint_files, load_checkpoint, read_metadata
from .generators import IKGenerator

__all__ = ["CheckpointRobot", "LoadedModel", "load_model"]

@dataclass(frozen=True)
class CheckpointRobot:
    """The robot a checkpoint was trained for, as its metadata records it.

    Attributes:
        name: robot name (``ur3``, ``planar3``, or the URDF's robot name).
        base_link, tip_link: ends of the chain.
        joint_names: movable joints, base to tip.
    """

    name: str
    base_link: str
    tip_link: str
    joint_names: tuple[str, ...]

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> "CheckpointRobot":
        """From checked checkpoint metadata (:func:`~.checkpoint.read_metadata` has validated the fields)."""
        robot = metadata["robot"]
        return cls(robot["name"], robot["base_link"], robot["tip_link"], tuple(robot["joint_names"]))

    @property
    def shipped(self) -> bool:
        """Whether the package can rebuild this robot from its name alone (a shipped URDF or a generated chain)."""
        return self.name in ROBOT_DEFAULT_LINKS or generated_robot(self.name)


@dataclass(frozen=True)
class LoadedModel:
    """A model with the chain it was verified against.

    Attributes:
        model: the inverse model, in eval mode, on the requested device.
        chain: the kinematic chain it is used on.
        info: the checkpoint's path and checked metadata.
        robot: the robot the checkpoint records.
        urdf: the URDF text the chain was built from; None for generated chains (``planarN``).
    """

    model: IKGenerator
    chain: KinematicChain
    info: CheckpointInfo
    robot: CheckpointRobot
    urdf: str | None

    @property
    def method(self) -> str:
        """The model's method (``cgan``, ``cinn``, ...)."""
        return self.model.config.method


def _chain_for(robot: str | Path | None, recorded: CheckpointRobot, base: str, tip: str) -> RobotChain:
    """The chain base -> tip of ``robot`` (None: the checkpoint's own, which must be shipped)."""
    if robot is not None:
        return robot_chain(robot, base, tip)
    if not recorded.shipped:
        raise ValueError(f"the model is for robot {recorded.name!r}, which is not shipped with the package: give its URDF")
    if (base, tip) != (recorded.base_link, recorded.tip_link) and not generated_robot(recorded.name):
        raise ValueError(
            f"base_link / tip_link {base!r} -> {tip!r} differ from the checkpoint's {recorded.base_link!r} -> {recorded.tip_link!r}; "
            "give the URDF that has them"
        )
    return robot_chain(recorded.name, base, tip)


def load_model(
    model: str | Path,
    robot: str | Path | None = None,
    base_link: str | None = None,
    tip_link: str | None = None,
    joint_names: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
) -> LoadedModel:
    """Load checkpoint ``model`` for ``robot``, verified against the chain it will be used on.

    Args:
        model: a shipped model name or a checkpoint path.
        robot: a shipped robot name (``ur3``, ``planarN``, ``artificialN``), a URDF file path, or
            URDF XML text; None: the checkpoint's own robot, which must be shipped.
        base_link, tip_link: chain ends in that robot; None: the checkpoint's (set them for a URDF
            whose links are named differently, e.g. with a prefix).
        joint_names: the joints the caller expects, base to tip; None or empty: whatever the chain has.
        device: where to put the model.

    Raises:
        CheckpointError: missing, corrupt or malformed checkpoint, or one trained for another robot.
        URDFError: the URDF cannot be read or has no such chain.
        ValueError: an unknown robot, chain ends a generated or recorded robot lacks, or joints
            other than ``joint_names``.
    """
    checkpoint_files(model)  # both files there, before anything else is read
    info = read_metadata(model)  # checked metadata, no weights: the robot to build the chain for
    recorded = CheckpointRobot.from_metadata(info.metadata)
    base, tip = base_link or recorded.base_link, tip_link or recorded.tip_link
    built = _chain_for(robot, recorded, base, tip)
    chain = built.chain
    expected = [n for n in (joint_names or ()) if n]
    if expected and expected != list(chain.joint_names):
        raise ValueError(f"expected joints {expected} do not match the chain {base!r} -> {tip!r}: {list(chain.joint_names)}")
    net, info = load_checkpoint(model, chain, device=device)  # the weights, read once, for this chain
    return LoadedModel(net, chain, info, recorded, built.urdf)
