"""``moveit_reach_node``: reach a pose with MoveIt 2 through one of the learned service's solutions.

For each target pose (the ``target`` parameter at start-up, and every geometry_msgs/PoseStamped
on ``~/goal``) it asks ``ik_service`` (cemssl_ik_interfaces/srv/GetIKSolutions) for
``num_solutions`` solutions seeded with the current state, orders them by joint distance, and
plans to them one after another with moveit_py (``PlanningComponent.set_goal_state(robot_state=...)``)
until a plan is found; with ``execute`` it runs that plan.  Solutions whose goal state collides
with the planning scene are skipped before planning.  The outcome (chosen solution, every attempt)
is logged and published as JSON on ``~/result`` (std_msgs/String).  ``demo_obstacle`` adds a box
to the planning scene that blocks the solutions nearest the home pose.

moveit_py is released for Jazzy and later; it is imported when the node starts (``main`` checks
it first and exits 2 with a message where it is missing).  Start it through ``moveit.launch.py``, which passes MoveIt's
configuration (planning pipelines, kinematics) as this node's parameters, as moveit_py needs.
"""

from __future__ import annotations

import json
import math
import sys
import threading

import numpy as np
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_msgs.msg import String

from cemssl_ik_interfaces.srv import GetIKSolutions

from .reach_planning import PlanOutcome, order_candidates, reach

__all__ = ["PARAMETERS", "MoveItReachNode", "main", "result_to_json"]

PARAMETERS = {
    # name: (default, description)
    "ik_service": ("/cemssl_ik/get_ik_solutions", "GetIKSolutions service of ik_service_node"),
    "planning_group": ("ur_manipulator", "MoveIt planning group (ur_moveit_config: ur_manipulator)"),
    "num_solutions": (16, "IK solutions asked for per target"),
    "max_attempts": (8, "solutions planned to at most per target (collision-skipped ones do not count)"),
    "joint_weights": ([1.0, 1.0, 1.0, 0.5, 0.5, 0.5], "per-joint weights of the joint distance that orders the solutions"),
    "execute": (False, "execute the first plan found (false: plan only)"),
    "target": ([0.0], "target pose x y z qx qy qz qw to reach at start-up ([0.0] = none; send poses to ~/goal)"),
    "target_frame": ("base_link", "frame of the start-up target"),
    "demo_obstacle": (False, "add a box to the planning scene (the demo scene: it blocks some solutions)"),
    "service_timeout": (5.0, "seconds to wait for the IK service's answer"),
}


def result_to_json(result, target_frame: str) -> str:
    """A :class:`~cemssl_ik.ros.reach_planning.ReachResult` as one JSON line (for ``~/result``)."""
    return json.dumps(
        {
            "success": result.success,
            "executed": result.executed,
            "frame": target_frame,
            "chosen": None if result.chosen is None else {"index": result.chosen.index, "q": result.chosen.q.tolist(), "distance": result.chosen.distance, "branch": result.chosen.branch},
            "attempts": [{"index": a.index, "stage": a.stage, "ok": a.ok, "reason": a.reason} for a in result.attempts],
            "message": result.message,
        }
    )


def _validate_target(values) -> list[float] | None:
    v = [float(x) for x in values]
    if v == [0.0]:
        return None
    if len(v) != 7 or not all(math.isfinite(x) for x in v):
        raise ValueError(f"target must be 7 finite numbers x y z qx qy qz qw, got {v}")
    if abs(math.sqrt(sum(x * x for x in v[3:])) - 1.0) > 1e-3:
        raise ValueError(f"target quaternion must be a unit quaternion, got {v[3:]}")
    return v


class MoveItReachNode(Node):
    """Reaches poses with MoveIt through the learned service's solutions (see the module docstring).
    moveit_py is imported here, when the node starts: ImportError where it is not installed."""

    def __init__(self) -> None:
        super().__init__("moveit_reach")
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        if p["num_solutions"] < 1 or p["max_attempts"] < 1 or p["service_timeout"] <= 0:
            raise ValueError("num_solutions and max_attempts must be >= 1 and service_timeout > 0")
        self._target = _validate_target(p["target"])
        from moveit.core.robot_state import RobotState
        from moveit.planning import MoveItPy

        self._RobotState = RobotState
        self._moveit = MoveItPy(node_name="moveit_reach_py")
        self._group = p["planning_group"]
        self._arm = self._moveit.get_planning_component(self._group)
        self._model = self._moveit.get_robot_model()
        self._scene = self._moveit.get_planning_scene_monitor()
        jmg = self._model.get_joint_model_group(self._group)
        if jmg is None:
            raise ValueError(f"planning group {self._group!r} is not in the robot model")
        self._joint_names = list(jmg.active_joint_model_names)
        group = ReentrantCallbackGroup()
        self._client = self.create_client(GetIKSolutions, p["ik_service"], callback_group=group)
        self._result_pub = self.create_publisher(String, "~/result", 10)
        self.create_subscription(PoseStamped, "~/goal", self._on_goal, 10, callback_group=group)
        if p["demo_obstacle"]:
            self._add_demo_obstacle()
        if self._target is not None:
            self._startup_timer = self.create_timer(1.0, self._reach_startup_target, callback_group=group)

    # ----------------------------------------------------------- scene
    def _add_demo_obstacle(self) -> None:
        from geometry_msgs.msg import Pose
        from moveit_msgs.msg import CollisionObject
        from shape_msgs.msg import SolidPrimitive

        box = CollisionObject()
        box.header.frame_id = self._model.model_frame
        box.id = "cemssl_demo_obstacle"
        prim = SolidPrimitive(type=SolidPrimitive.BOX, dimensions=[0.04, 0.4, 0.3])
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = 0.2, 0.0, 0.35
        pose.orientation.w = 1.0
        box.primitives.append(prim)
        box.primitive_poses.append(pose)
        box.operation = CollisionObject.ADD
        with self._scene.read_write() as scene:
            scene.apply_collision_object(box)
            scene.current_state.update()
        self.get_logger().info("demo obstacle added to the planning scene")

    def _current_q(self) -> np.ndarray:
        with self._scene.read_only() as scene:
            return np.asarray(scene.current_state.get_joint_group_positions(self._group), dtype=np.float64)

    def _goal_state(self, q: np.ndarray):
        state = self._RobotState(self._model)
        state.set_joint_group_positions(self._group, q)
        state.update()
        return state

    def _in_collision(self, q: np.ndarray) -> bool:
        with self._scene.read_only() as scene:
            return bool(scene.is_state_colliding(robot_state=self._goal_state(q), joint_model_group_name=self._group, verbose=False))

    def _plan(self, q: np.ndarray):
        self._arm.set_start_state_to_current_state()
        self._arm.set_goal_state(robot_state=self._goal_state(q))
        result = self._arm.plan()
        if not result:
            return PlanOutcome(False, None, f"planner failed ({getattr(result, 'error_code', '')})")
        return PlanOutcome(True, result.trajectory)

    def _execute(self, trajectory) -> bool:
        status = self._moveit.execute(trajectory, controllers=[])
        return bool(getattr(status, "status", "SUCCEEDED") in ("SUCCEEDED", True)) if status is not None else True

    # ----------------------------------------------------------- reaching
    def _reach_startup_target(self) -> None:
        self._startup_timer.cancel()
        msg = PoseStamped()
        msg.header.frame_id = self.get_parameter("target_frame").value
        x, y, z, qx, qy, qz, qw = self._target
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, y, z
        msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = qx, qy, qz, qw
        self._on_goal(msg)

    def _ask_ik(self, pose: PoseStamped, current: np.ndarray):
        req = GetIKSolutions.Request()
        req.target = pose
        req.num_solutions = int(self.get_parameter("num_solutions").value)
        req.refine = True
        req.seed.name = self._joint_names
        req.seed.position = current.tolist()
        if not self._client.wait_for_service(timeout_sec=float(self.get_parameter("service_timeout").value)):
            raise RuntimeError(f"IK service {self._client.srv_name} not available")
        # the answer is received by another executor thread (reentrant group), which sets the event
        answered = threading.Event()
        future = self._client.call_async(req)
        future.add_done_callback(lambda _: answered.set())
        if not answered.wait(float(self.get_parameter("service_timeout").value)):
            raise RuntimeError("IK service did not answer in time")
        return future.result()

    def _on_goal(self, pose) -> None:
        frame = pose.header.frame_id
        try:
            current = self._current_q()
            res = self._ask_ik(pose, current)
            if res.error_code != GetIKSolutions.Response.SUCCESS:
                raise RuntimeError(f"IK service: {res.message} (code {res.error_code})")
            names = list(res.solutions[0].name)
            order = [names.index(j) for j in self._joint_names]
            sols = np.array([[js.position[i] for i in order] for js in res.solutions], dtype=np.float64)
            weights = np.asarray(self.get_parameter("joint_weights").value, dtype=np.float64)
            candidates = order_candidates(sols, current, weights=weights if len(weights) == len(current) else None, branches=list(res.branches))
            execute = self._execute if self.get_parameter("execute").value else None
            result = reach(candidates, self._plan, self._in_collision, execute, int(self.get_parameter("max_attempts").value))
        except Exception as exc:  # a bad goal or a missing service must not end the node
            self.get_logger().error(f"reach failed: {exc}")
            self._result_pub.publish(String(data=json.dumps({"success": False, "message": str(exc)})))
            return
        log = self.get_logger().info if result.success else self.get_logger().warning
        log(result.message)
        self._result_pub.publish(String(data=result_to_json(result, frame)))


def main(args=None) -> int:
    from .runtime import run_node

    try:
        import moveit.planning  # noqa: F401 - checked before the node starts
    except ImportError as exc:
        print(f"moveit_reach_node: moveit_py is not importable ({exc}); it is released for ROS 2 Jazzy and later", file=sys.stderr)
        return 2
    # two threads: a goal callback waits for the IK service's answer, which another thread receives
    return run_node(MoveItReachNode, "moveit_reach_node", args, threads=2)


if __name__ == "__main__":
    sys.exit(main())
