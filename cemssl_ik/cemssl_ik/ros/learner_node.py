"""``learner_node``: re-learns the inverse model from the robot itself, as a ROS 2 action.

Action ``~/learn`` (cemssl_ik_interfaces/action/Learn; one goal at a time, cancellable): see
:mod:`cemssl_ik.learning.adaptation` for the strategies.  Feedback carries the phase, the robot
moves used, the latest precision measured on the robot and the phase's ETA.

The robot (``forward_model``):
    ``sim``       the built-in MuJoCo UR3, in process, with the ``link_length_change``,
                  ``joint_zero_offsets``, ``tool_offset`` and ``measurement_noise`` parameters
                  making it differ from the nominal URDF (the default: no hardware needed);
    ``robot``     any ros2_control UR over ROS 2: ``<controller>/joint_trajectory``,
                  ``joint_states_topic`` and ``pose_topic`` (the real arm through ur_robot_driver,
                  Gazebo, ``sim_robot_node``); every command is checked by the safety layer first,
                  and ``dry_run`` (default on for the real robot in ur3_robot.launch.py) logs the
                  moves without sending them;
    ``analytic``  FK of the nominal chain with the same perturbation parameters (a fast stand-in).

Every measured sample is appended (fsync'ed) to ``output_dir/samples.jsonl`` before the next move;
checkpoints are written atomically; a goal sent again after a crash reuses the recorded samples
and the last checkpoint.  Each new model is announced on ``model_update_topic`` (std_msgs/String,
the checkpoint path) after its chain's URDF on ``~/robot_description`` (latched): point the IK
service's ``robot_description_topic`` there and it hot-reloads the model for the identified arm,
so its refined answers are exact on the real one.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import String

from cemssl_ik_interfaces.action import Learn

from ..kinematics import KinematicChain
from ..learning.adaptation import (
    AdaptationConfig,
    Adapter,
    LearnGoal,
    LearnOutcome,
    LearnProgress,
    LoggedForwardModel,
    chain_from_calibration_file,
    identify_from_samples,
)
from ..learning.sample_log import SampleLog
from ..models import load_checkpoint, load_model
from ..solver import refined_answers

__all__ = ["LearnerNode", "PARAMETERS", "main"]

PARAMETERS = {
    # name: (default, description)
    "model": ("ur3_fkloss_position", "model to adapt (shipped name or checkpoint path; a model without branch classes)"),
    "output_dir": ("", "where samples, checkpoints and URDFs go ('' = $ROS_HOME/cemssl_learner, default ~/.ros/cemssl_learner)"),
    "forward_model": ("sim", "the robot: sim (built-in MuJoCo UR3, in process), robot (ros2_control over ROS 2) or analytic (perturbed FK)"),
    "controller": ("joint_trajectory_controller", "robot: joint trajectory controller (scaled_joint_trajectory_controller on the real UR)"),
    "joint_states_topic": ("/joint_states", "robot: sensor_msgs/JointState topic"),
    "pose_source": ("topic", "robot: tool pose from a PoseStamped topic ('topic') or FK of the measured joints ('fk')"),
    "pose_topic": ("/tcp_pose_broadcaster/pose", "robot: geometry_msgs/PoseStamped of the tool (frame base or base_link)"),
    "dry_run": (False, "robot: check and log every move, send none (samples are then invalid)"),
    "safety_file": ("", "safety layer settings (YAML of cemssl_ik.safety.SafetyConfig: limits margin, joint step, floor, workspace, speeds); '' = its defaults"),
    "link_length_change": (0.0, "sim / analytic: metres added to every link of the true arm"),
    "joint_zero_offsets": ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "sim / analytic: true joint = reading + offset, rad"),
    "tool_offset": ([0.0, 0.0, 0.0], "sim / analytic: tool point offset in the tip frame, m"),
    "measurement_noise": (0.0, "sim: standard deviation of the measured tool position, m"),
    "identify_moves": (60, "calibrate: default move budget of identification"),
    "eval_targets": (20, "configurations the model is measured on before and after (2 moves each)"),
    "train_minutes": (5.0, "default fine-tuning time"),
    "batch_size": (256, "fine-tuning batch per ensemble member"),
    "lr": (1e-3, "fine-tuning learning rate (cosine-decayed to 1e-6)"),
    "robot_lr": (1e-3, "robot: black-box CEMSSL learning rate (cosine-decayed to 1e-5 over the goal's moves)"),
    "robot_epochs": (20, "robot: passes over every measured sample per iteration (they cost no moves)"),
    "robot_task_weight": (1.0, "robot: weight of the task-space term (joint errors weighed by the tool displacement the nominal Jacobian gives them); 0 = Algorithm 1's joint MSE alone"),
    "checkpoint_every": (60.0, "seconds between checkpoints while training"),
    "seed": (0, "RNG seed"),
    "model_update_topic": ("/cemssl_learner/model_updates", "std_msgs/String: each new checkpoint path ('' disables)"),
}

_STRATEGY_HELP = "calibrate, calibration_file, robot"


def default_output_dir() -> Path:
    home = os.environ.get("ROS_HOME") or os.path.join(os.path.expanduser("~"), ".ros")
    return Path(home) / "cemssl_learner"


class LearnerNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__("cemssl_learner", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self._check_parameters(p)
        self._p = p
        # the model's own robot; a model that cannot be loaded fails at start-up, not at the first goal
        self.chain: KinematicChain = load_model(p["model"]).chain
        self.output_dir = Path(p["output_dir"]) if p["output_dir"] else default_output_dir()
        self.log = SampleLog.open(self.output_dir / "samples.jsonl", dof=self.chain.dof)
        if self.log.dropped_tail:
            self.get_logger().warning("samples.jsonl ended in a partial line (a crash mid-write): dropped it")
        self.get_logger().info(f"{len(self.log)} recorded sample(s) in {self.output_dir}")
        self._busy = threading.Lock()
        group = ReentrantCallbackGroup()
        _, self._check, _ = self._safety(p)
        self.robot = self._make_robot(p, group)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._urdf_pub = self.create_publisher(String, "~/robot_description", latched)
        self._update_pub = self.create_publisher(String, p["model_update_topic"], 10) if p["model_update_topic"] else None
        self._server = ActionServer(
            self, Learn, "~/learn", execute_callback=self._execute, goal_callback=self._on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT, callback_group=group
        )
        self.get_logger().info(f"learner ready: forward model {p['forward_model']}, action ~/learn")

    def destroy_node(self) -> None:
        self.log.close()
        super().destroy_node()

    # ------------------------------------------------------------ set-up
    @staticmethod
    def _check_parameters(p: dict) -> None:
        if p["forward_model"] not in ("sim", "robot", "analytic"):
            raise ValueError(f"forward_model must be sim, robot or analytic, got {p['forward_model']!r}")
        if p["pose_source"] not in ("topic", "fk"):
            raise ValueError(f"pose_source must be topic or fk, got {p['pose_source']!r}")
        for name in ("identify_moves", "eval_targets", "batch_size", "robot_epochs"):
            if p[name] < 1:
                raise ValueError(f"{name} must be >= 1, got {p[name]}")
        for name in ("train_minutes", "lr", "robot_lr", "checkpoint_every"):
            if not (math.isfinite(p[name]) and p[name] > 0):
                raise ValueError(f"{name} must be a positive number, got {p[name]}")
        if not (math.isfinite(p["robot_task_weight"]) and p["robot_task_weight"] >= 0):
            raise ValueError(f"robot_task_weight must be a finite number >= 0, got {p['robot_task_weight']}")
        if not (math.isfinite(p["link_length_change"]) and math.isfinite(p["measurement_noise"]) and p["measurement_noise"] >= 0):
            raise ValueError("link_length_change must be finite and measurement_noise finite and >= 0")
        if len(p["joint_zero_offsets"]) != 6 or len(p["tool_offset"]) != 3 or not all(math.isfinite(v) for v in list(p["joint_zero_offsets"]) + list(p["tool_offset"])):
            raise ValueError("joint_zero_offsets must be 6 and tool_offset 3 finite numbers")

    def _perturbation(self, p: dict):
        from ..kinematics.perturbation import KinematicPerturbation, uniform_link_change

        return KinematicPerturbation(
            link_length_changes=uniform_link_change(self.chain, p["link_length_change"]),
            joint_zero_offsets=tuple(p["joint_zero_offsets"]),
            tool_offset=tuple(p["tool_offset"]),
        )

    def _safety(self, p: dict):
        """The safety layer (config/safety.yaml's settings, or ``safety_file``): (checker, check, duration)."""
        from ..safety import SafetyChecker, SafetyConfig

        config = SafetyConfig.from_yaml(p["safety_file"]) if p["safety_file"] else SafetyConfig()
        checker = SafetyChecker(self.chain, config)

        def check(current: np.ndarray, target: np.ndarray) -> tuple[bool, list[str]]:
            verdict = checker.check(current, target)
            return verdict.ok, list(verdict.reasons)

        def duration(current: np.ndarray, target: np.ndarray) -> float:
            return float(checker.time_trajectory(current, target).duration)

        return checker, check, duration

    def _make_robot(self, p: dict, group):
        kind = p["forward_model"]
        if kind == "analytic":
            from ..kinematics.perturbation import perturbed_chain
            from ..learning.forward_model import AnalyticForwardModel

            return LoggedForwardModel(AnalyticForwardModel(perturbed_chain(self.chain, self._perturbation(p))), self.log)
        if kind == "sim":
            from ..sim.mujoco_ur3 import SimConfig, SimUR3
            from ..sim.sim_forward_model import SimForwardModel

            # settled = within 1e-7 rad of the target: the arm's own tracking error stays far below
            # the precision measured through it (a real arm's repeatability is ~0.03 mm)
            sim = SimUR3(
                SimConfig(
                    perturbation=self._perturbation(p), tool_position_noise_std=p["measurement_noise"], seed=p["seed"],
                    settle_position_tolerance=1e-7, settle_velocity_tolerance=1e-5,
                )
            )  # fmt: skip
            checker, check, duration = self._safety(p)
            return LoggedForwardModel(SimForwardModel(sim, check, duration, max_step=checker.config.max_joint_step), self.log)
        from ..learning.robot_moves import SettleConfig
        from .robot_forward_model import RobotInterfaceConfig, RosRobotForwardModel

        checker, check, duration = self._safety(p)
        if p["dry_run"] or checker.config.dry_run:
            inner_check = check

            def check(current, target):  # noqa: F811 - dry run: every move refused after its check, and logged
                ok, reasons = inner_check(current, target)
                self.get_logger().info(f"dry run: would move to {np.round(target, 4).tolist()} ({'safe' if ok else 'refused: ' + '; '.join(reasons)})")
                return False, ["dry run"]

        config = RobotInterfaceConfig(controller=p["controller"], joint_states_topic=p["joint_states_topic"], pose_source=p["pose_source"], pose_topic=p["pose_topic"], settle=SettleConfig())
        return RosRobotForwardModel(self, self.chain, config, check, duration, log=self.log, max_step=checker.config.max_joint_step)

    # ------------------------------------------------------------ action
    def _on_goal(self, goal_request) -> GoalResponse:
        if self._busy.locked():
            self.get_logger().warning("a learning goal is already running: rejected")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, goal_handle):
        result = Learn.Result()
        if not self._busy.acquire(blocking=False):
            goal_handle.abort()
            result.message = "another goal is running"
            return result
        try:
            return self._run_goal(goal_handle, result)
        finally:
            self._busy.release()

    def _run_goal(self, goal_handle, result):
        g = goal_handle.request
        p = self._p
        try:
            goal = LearnGoal(g.strategy, int(g.max_moves), float(g.max_minutes), g.output, g.calibration_file)
        except ValueError as exc:
            goal_handle.abort()
            result.message = f"invalid goal: {exc} (strategies: {_STRATEGY_HELP})"
            return result
        model, _ = load_checkpoint(p["model"], self.chain)  # read again (it may have been replaced), for the chain the goal runs on
        if model.num_classes:
            goal_handle.abort()
            result.message = f"model {p['model']!r} has branch classes, which FK-loss fine-tuning cannot teach; use a model without them (e.g. ur3_fkloss_position)"
            return result
        config = AdaptationConfig(
            identify_moves=p["identify_moves"], eval_targets=p["eval_targets"], train_minutes=p["train_minutes"],
            batch_size=p["batch_size"], lr=p["lr"], checkpoint_every=p["checkpoint_every"], seed=p["seed"],
            robot_lr=p["robot_lr"], robot_lr_final=min(p["robot_lr"], AdaptationConfig.robot_lr_final), robot_epochs=p["robot_epochs"], robot_task_weight=p["robot_task_weight"],
        )  # fmt: skip

        def feedback(progress: LearnProgress) -> None:
            fb = Learn.Feedback()
            fb.phase, fb.moves_used, fb.precision_mm = progress.phase, int(progress.moves_used), float(progress.precision_mm)
            fb.progress, fb.eta_s, fb.message = float(progress.progress), float(progress.eta_s), progress.message
            goal_handle.publish_feedback(fb)
            if progress.message:
                self.get_logger().info(f"[{progress.phase}] {progress.message}")

        adapter = Adapter(
            model, self.chain, self.robot, self.log, self.output_dir, config,
            identify=identify_from_samples, read_calibration=chain_from_calibration_file,
            progress=feedback, cancelled=lambda: goal_handle.is_cancel_requested,
            feasible=lambda q: self._check(q, q)[0], refine=refined_answers,
        )  # fmt: skip
        try:
            outcome: LearnOutcome = adapter.run(goal)
        except Exception as exc:  # noqa: BLE001 - a failed goal must not take the node down
            self.get_logger().error(f"learning goal failed: {exc!r}")
            goal_handle.abort()
            result.message = f"failed: {exc}"
            return result
        for field in ("success", "message", "checkpoint", "urdf", "error_before_mm", "error_after_mm", "refined_error_mm", "moves", "minutes"):
            setattr(result, field, getattr(outcome, field))
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif outcome.success:
            self._announce(outcome)
            goal_handle.succeed()
        else:
            goal_handle.abort()
        self.get_logger().info(outcome.message)
        return result

    def _announce(self, outcome: LearnOutcome) -> None:
        urdf = Path(outcome.urdf).read_text()
        self._urdf_pub.publish(String(data=urdf))  # the service reloads against it ...
        if self._update_pub is not None:
            # ... then loads the model: messages on two topics may arrive in either order, and a
            # model announced before its URDF is refused once (the service loads it when the URDF
            # arrives); a moment between them spares the refusal
            time.sleep(1.0)
            self._update_pub.publish(String(data=outcome.checkpoint.removesuffix(".safetensors")))


def main(args=None) -> int:
    from .runtime import run_node

    # the goal runs on one thread while others receive /joint_states, poses and cancel requests
    return run_node(LearnerNode, "learner_node", args, threads=4)


if __name__ == "__main__":
    sys.exit(main())
