"""What the learner is asked and what it answers: goals, progress, outcomes, budgets, and the
callables the strategies take (identification, calibration-file reading, refined answers).

These are the fields of ``cemssl_ik_interfaces/action/Learn.action`` as plain validated dataclasses,
so the strategies (:mod:`.adaptation`) and the node (``ros/learner_node.py``) share them.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from ..kinematics import KinematicChain
from ..models.generators import IKGenerator

__all__ = ["STRATEGIES", "Identify", "ReadCalibration", "Refine", "Cancelled", "AdaptationConfig", "LearnGoal", "LearnProgress", "LearnOutcome"]

STRATEGIES = ("calibrate", "calibration_file", "robot")

#: identify(nominal chain, q (N, dof), position (N, 3), quaternion (N, 4)) -> (chain, urdf text, report dict)
Identify = Callable[[KinematicChain, np.ndarray, np.ndarray, np.ndarray], tuple[KinematicChain, str, dict]]
#: read_calibration(nominal chain, yaml path) -> (chain, urdf text)
ReadCalibration = Callable[[KinematicChain, str], tuple[KinematicChain, str]]
#: (model, chain, positions (N, 3), rotations (N, 3, 3) or None) -> (refined joints (N, dof), found (N,) bool):
#: the IK service's answer on ``chain`` (e.g. :func:`cemssl_ik.solver.refined_answers`)
Refine = Callable[[IKGenerator, KinematicChain, torch.Tensor, "torch.Tensor | None"], tuple[torch.Tensor, torch.Tensor]]


class Cancelled(RuntimeError):
    """The goal was cancelled; what was measured is kept."""


@dataclass(frozen=True)
class AdaptationConfig:
    """Budgets and training settings of the learner's strategies.

    Attributes:
        identify_moves: moves measured for identification (``calibrate``), default of a goal.
        eval_targets: random configurations the model is measured on (two moves each: the
            configuration, then the model's answer for the pose measured there).
        train_minutes: FK-loss fine-tuning time, default of a goal.
        batch_size: targets per step and member of the fine-tuning.
        lr, lr_final: its Adam learning rate, cosine-decayed.
        position_loss, distance_scale, adam_eps: the fine-tuning's FK position loss and Adam epsilon
            (see :class:`~cemssl_ik.learning.unsupervised.UnsupervisedConfig`); the pseudo-distance with
            a 1 mm scale and a tiny epsilon keep the steps' size at sub-millimetre errors.  The
            epsilon serves the ``robot`` strategy's black-box CEMSSL too.
        rotation_weight: FK-loss weight of the orientation error (pose models).
        joint_margin: radians kept from the joint limits by identification configurations.
        checkpoint_every: seconds between checkpoints during fine-tuning.
        robot_lr, robot_lr_final: learning rate of black-box CEMSSL (the ``robot`` strategy),
            cosine-decayed over the moves (or minutes) of the goal.
        robot_epochs: its passes over every measured sample per iteration (training costs no moves).
        robot_task_weight: its task-space term (:attr:`~.blackbox.BlackBoxConfig.task_weight`;
            0: the joint MSE of Algorithm 1 alone).
        seed: RNG seed of configurations and training.
    """

    identify_moves: int = 60
    eval_targets: int = 20
    train_minutes: float = 5.0
    batch_size: int = 256
    lr: float = 1e-3
    lr_final: float = 1e-6
    position_loss: str = "distance"
    distance_scale: float = 1e-3
    adam_eps: float = 1e-16
    rotation_weight: float = 0.1
    joint_margin: float = 0.2
    checkpoint_every: float = 60.0
    robot_lr: float = 1e-3
    robot_lr_final: float = 1e-5
    robot_epochs: int = 20
    robot_task_weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.identify_moves < 1 or self.eval_targets < 1 or self.batch_size < 1:
            raise ValueError("identify_moves, eval_targets and batch_size must be >= 1")
        for name in ("train_minutes", "lr", "lr_final", "checkpoint_every", "robot_lr", "robot_lr_final"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number, got {v}")
        if self.position_loss not in ("squared", "distance"):
            raise ValueError(f"position_loss must be 'squared' or 'distance', got {self.position_loss!r}")
        if not (math.isfinite(self.distance_scale) and self.distance_scale >= 0 and math.isfinite(self.adam_eps) and self.adam_eps > 0):
            raise ValueError("distance_scale must be >= 0 and adam_eps > 0")
        if not (isinstance(self.robot_epochs, int) and self.robot_epochs >= 1 and math.isfinite(self.robot_task_weight) and self.robot_task_weight >= 0):
            raise ValueError("robot_epochs must be an integer >= 1 and robot_task_weight >= 0")
        if not (math.isfinite(self.joint_margin) and self.joint_margin >= 0):
            raise ValueError(f"joint_margin must be >= 0, got {self.joint_margin}")


@dataclass(frozen=True)
class LearnGoal:
    """One learning goal (the fields of ``Learn.action``; 0 / '' = the config's default)."""

    strategy: str
    max_moves: int = 0
    max_minutes: float = 0.0
    output: str = ""
    calibration_file: str = ""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.max_moves < 0 or not (math.isfinite(self.max_minutes) and self.max_minutes >= 0):
            raise ValueError("max_moves and max_minutes must be >= 0")
        if self.output and (os.sep in self.output or self.output.startswith(".") or len(self.output) > 100):
            raise ValueError(f"output must be a plain file name, got {self.output!r}")
        if self.strategy == "calibration_file" and not self.calibration_file:
            raise ValueError("strategy calibration_file needs calibration_file (a UR calibration YAML)")


@dataclass(frozen=True)
class LearnProgress:
    phase: str
    moves_used: int
    precision_mm: float = math.nan
    progress: float = 0.0
    eta_s: float = math.nan
    message: str = ""


@dataclass(frozen=True)
class LearnOutcome:
    success: bool
    message: str
    checkpoint: str = ""
    urdf: str = ""
    error_before_mm: float = math.nan
    error_after_mm: float = math.nan
    refined_error_mm: float = math.nan
    moves: int = 0
    minutes: float = 0.0
    identification: dict | None = None
    iterations: int = 0

    def to_dict(self) -> dict:
        return asdict(self)
