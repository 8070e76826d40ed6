"""``ik_service_node``: multi-solution IK from a learned (CEMSSL) model, thin over :class:`IKSolver`.

Services:
    ~/get_ik_solutions  cemssl_ik_interfaces/srv/GetIKSolutions (multi-solution)
    ~/get_ik            moveit_msgs/srv/GetPositionIK (registered when moveit_msgs is importable):
                        the valid solution nearest ik_request.robot_state; the request MoveIt's
                        srv_kinematics_plugin sends (avoid_collisions = true, its group name) is
                        answered, and MoveIt checks the answer against its planning scene
    ~/reload            std_srvs/srv/Trigger: load the ``model`` parameter again, in the background
                        (requests keep being answered by the old model meanwhile); the Trigger is
                        answered when the load has finished
Subscriptions:
    ``model_update_topic`` (std_msgs/String, a checkpoint path): hot reload when the learner
    announces a new checkpoint.
    ``robot_description_topic`` (std_msgs/String, transient local, as robot_state_publisher
    publishes it): the URDF; a new description reloads the model against it.
Publications:
    ``~/solutions`` (trajectory_msgs/JointTrajectory, when ``publish_solutions``): the solutions of
    the last answered request as trajectory points one second apart, for visualization.

A model that cannot be loaded (missing, corrupt, hostile, for another robot) does not stop the
node: it starts, logs why, and answers MODEL_UNAVAILABLE until a reload succeeds.

Frames: requests in the chain base frame ('' or the base link), in any URDF link fixed to it
(e.g. UR ``base``), or, when tf2 is available, any frame tf2 has a transform for (looked up without
waiting: an unknown frame is answered FRAME_TRANSFORM_FAILURE at once).
"""

from __future__ import annotations

import math
import sys
import threading
from pathlib import Path

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from cemssl_ik_interfaces.srv import GetIKSolutions

from ..kinematics import KinematicChain, URDFError, fixed_transform, quaternion_to_matrix
from ..models import load_model
from ..solver import IKSolver, RequestBatcher, SolverOptions
from .conversions import RequestError, parse_pose, parse_position_ik_request, parse_seed, reach_sphere, validate_num_solutions

__all__ = ["IKServiceNode", "PARAMETERS", "main"]

PARAMETERS = {
    # name: (default, description)
    "model": ("ur3_regression_pose", "shipped model name or checkpoint path"),
    "robot_description": ("", "URDF XML of the robot (default: the checkpoint's built-in robot, e.g. ur3)"),
    "robot_description_file": ("", "path to the robot's URDF (alternative to robot_description)"),
    "robot_description_topic": ("/robot_description", "std_msgs/String URDF topic (transient local); a new description reloads the model ('' disables)"),
    "base_link": ("", "chain base link in the URDF ('' = the checkpoint's; set it for prefixed URDFs)"),
    "tip_link": ("", "chain tip link in the URDF ('' = the checkpoint's)"),
    "joint_names": ([""], "expected joint names of the chain, base to tip (empty = whatever the URDF chain has); a mismatch refuses the model"),
    "publish_solutions": (False, "publish each answer's solutions on ~/solutions (trajectory_msgs/JointTrajectory)"),
    "max_solutions": (64, "largest num_solutions a request may ask for"),
    "refine": (True, "GetPositionIK: polish solutions with damped least squares"),
    "position_tolerance": (1e-6, "default position tolerance [m] for refined solutions"),
    "orientation_tolerance": (1e-5, "default orientation tolerance [rad] for refined solutions"),
    "raw_position_tolerance": (0.1, "default position tolerance [m] for unrefined (raw model) solutions"),
    "raw_orientation_tolerance": (0.5, "default orientation tolerance [rad] for unrefined (raw model) solutions"),
    "distinct_tolerance": (1e-2, "solutions closer than this (max joint difference, rad) are one"),
    "oversample": (4, "samples drawn per requested solution and round (models without branch classes)"),
    "random_fraction": (-1.0, "share of uniform joint samples in a first sampling round, 0..1 (more coverage, less speed); -1 = the solver's default: 0.75, or 0 for models with branch classes"),
    "max_batch": (64, "concurrent requests solved together in one batched solver call, at most"),
    "executor_threads": (1, "1: one executor thread, requests answered one after another (lowest latency per request); N > 1: N threads, concurrent requests wait for each other and are solved in batched calls (for many cores and many clients)"),
    "model_update_topic": ("/cemssl_learner/model_updates", "std_msgs/String checkpoint paths that trigger a reload ('' disables)"),
    "moveit_group_names": ([""], "GetPositionIK: accepted group_name values ([''] = any group; e.g. ['ur_manipulator'])"),
    "moveit_avoid_collisions": ("answer", "GetPositionIK with avoid_collisions=true: 'answer' (MoveIt checks the answer against its planning scene, as srv_kinematics_plugin does) or 'refuse' (COLLISION_CHECKING_UNAVAILABLE)"),
}

_INT_PARAMETERS = ("max_solutions", "oversample", "max_batch", "executor_threads")
_POSITIVE_FLOAT_PARAMETERS = ("position_tolerance", "orientation_tolerance", "raw_position_tolerance", "raw_orientation_tolerance", "distinct_tolerance")

#: requests a service keeps queued (DDS history depth) while every executor thread is busy
SERVICE_QUEUE_DEPTH = 1000


class _Snapshot:
    """What one request works with, taken under the state lock (a reload may swap it meanwhile)."""

    __slots__ = ("batcher", "chain", "urdf", "reach", "error")

    def __init__(self, batcher, chain, urdf, reach, error) -> None:
        self.batcher, self.chain, self.urdf, self.reach, self.error = batcher, chain, urdf, reach, error


class IKServiceNode(Node):
    """The learned IK service; see the module docstring for its interface."""

    def __init__(self, **kwargs) -> None:
        super().__init__("cemssl_ik", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            # the executor is built once, at start-up: changing its size later would do nothing
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=name == "executor_threads"))
        self.add_on_set_parameters_callback(self._validate_parameters)
        # the callback guards later changes; values given at start-up are checked here
        check = self._validate_parameters([self.get_parameter(name) for name in PARAMETERS])
        if not check.successful:
            raise ValueError(f"invalid parameter: {check.reason}")
        self._state_lock = threading.Lock()
        self._load_lock = threading.Lock()  # one model load at a time, so the last one wins
        self._reload_wanted = False  # a reload the reload thread has not yet started
        self._reload_waiters: list[Future] = []  # ~/reload calls answered by the next load
        self._description_changed = False  # a robot_description arrived since the last successful load
        self._reloader_running = False
        self._state = _Snapshot(None, None, None, None, "no model loaded yet")
        self._tf_buffer = self._make_tf_buffer()
        self.reload_model()
        group = ReentrantCallbackGroup()
        # Requests queue in DDS until an executor thread takes them; the default service QoS keeps
        # only 10, so a burst from many clients would silently drop requests.  Keep many.
        self._service_qos = QoSProfile(depth=SERVICE_QUEUE_DEPTH, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        self.create_service(GetIKSolutions, "~/get_ik_solutions", self._on_get_ik_solutions, callback_group=group, qos_profile=self._service_qos)
        self.create_service(Trigger, "~/reload", self._on_reload, callback_group=group)
        self._moveit = self._register_moveit(group)
        topic = self.get_parameter("model_update_topic").value
        if topic:
            self.create_subscription(String, topic, self._on_model_update, 10, callback_group=group)
        self._solutions_pub = None
        if self.get_parameter("publish_solutions").value:
            from trajectory_msgs.msg import JointTrajectory

            self._solutions_pub = self.create_publisher(JointTrajectory, "~/solutions", 10)
        rd_topic = self.get_parameter("robot_description_topic").value
        if rd_topic:
            latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.create_subscription(String, rd_topic, self._on_robot_description, latched, callback_group=group)

    # ---------------------------------------------------------------- setup
    def _validate_parameters(self, params) -> SetParametersResult:
        for p in params:
            v = p.value
            if p.name in _INT_PARAMETERS and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                return SetParametersResult(successful=False, reason=f"{p.name} must be an integer >= 1")
            if p.name in _POSITIVE_FLOAT_PARAMETERS and not (isinstance(v, float) and v > 0 and math.isfinite(v)):
                return SetParametersResult(successful=False, reason=f"{p.name} must be a positive finite float")
            if p.name == "random_fraction" and not (isinstance(v, float) and (v == -1.0 or 0.0 <= v <= 1.0)):
                return SetParametersResult(successful=False, reason="random_fraction must be a float in [0, 1], or -1 for the solver's default")
            if p.name == "moveit_avoid_collisions" and v not in ("answer", "refuse"):
                return SetParametersResult(successful=False, reason=f"moveit_avoid_collisions must be 'answer' or 'refuse', got {v!r}")
        return SetParametersResult(successful=True)

    def _random_fraction(self) -> float | None:
        v = float(self.get_parameter("random_fraction").value)
        return None if v < 0 else v

    def _make_tf_buffer(self):
        try:
            from tf2_ros import Buffer, TransformListener
        except ImportError:
            return None
        buffer = Buffer()
        # the listener's subscriptions run on this node's executor between requests; lookups take
        # the latest transform without waiting (a listener thread of its own, spin_thread=True,
        # dies with a traceback at shutdown in tf2_ros releases before ros2/geometry2 PR 930)
        self._tf_listener = TransformListener(buffer, self)
        return buffer

    def _register_moveit(self, group):
        try:
            from moveit_msgs.msg import MoveItErrorCodes
            from moveit_msgs.srv import GetPositionIK
        except ImportError:
            self.get_logger().info("moveit_msgs not importable: ~/get_ik (GetPositionIK) not offered")
            return None
        self.create_service(GetPositionIK, "~/get_ik", self._on_get_ik, callback_group=group, qos_profile=self._service_qos)
        return MoveItErrorCodes

    # ---------------------------------------------------------------- loading
    def reload_model(self) -> tuple[bool, str]:
        """(Re)load the ``model`` parameter; keeps serving the old model if the new one fails.

        Loads are serialized: one that starts after another has read its parameters installs
        its model after it, so the model served is the one named last."""
        with self._load_lock:
            return self._load_model()

    def request_reload(self, waiter: Future | None = None) -> None:
        """Reload in the background, coalescing bursts: requests that arrive while a load runs
        cause one more load (of the parameters as they are then), not one each.  A load takes
        seconds (checkpoint, chain, solver warm-up); done in the executor, it would leave IK
        requests unanswered meanwhile (MoveIt's srv plugin waits on them without a timeout).

        Args:
            waiter: a future that gets the (success, message) of the first load that starts
                after this call."""
        with self._state_lock:
            self._reload_wanted = True
            if waiter is not None:
                self._reload_waiters.append(waiter)
            if self._reloader_running:
                return
            self._reloader_running = True
        threading.Thread(target=self._reloader, name="cemssl_ik_reload", daemon=True).start()

    def _reloader(self) -> None:
        while True:
            with self._state_lock:
                if not self._reload_wanted:
                    self._reloader_running = False
                    return
                self._reload_wanted = False
                waiters, self._reload_waiters = self._reload_waiters, []
            try:
                result = self.reload_model()
            except BaseException as exc:  # noqa: BLE001 - keep serving the old model; the thread must end cleanly
                result = (False, f"reload failed: {exc!r}")
                self.get_logger().error(result[1])
            for w in waiters:
                w.set_result(result)

    def _load_model(self) -> tuple[bool, str]:
        name = self.get_parameter("model").value
        try:
            urdf_file = self.get_parameter("robot_description_file").value
            robot = self.get_parameter("robot_description").value or (Path(urdf_file) if urdf_file else None)  # None: the checkpoint's robot
            loaded = load_model(
                name,
                robot,
                base_link=self.get_parameter("base_link").value or None,
                tip_link=self.get_parameter("tip_link").value or None,
                joint_names=self.get_parameter("joint_names").value,
            )  # verified against the robot
            model, chain = loaded.model, loaded.chain
            solver = IKSolver(model, chain)
            warm = solver.warmup()  # compile / load the solver kernels before the first request
            batcher = RequestBatcher(solver, max_batch=int(self.get_parameter("max_batch").value))
            reach = reach_sphere(chain.segment_arrays())
        except Exception as exc:  # noqa: BLE001 - no model file may take the node down (MemoryError, RecursionError included)
            reason = str(exc) if isinstance(exc, (ValueError, KeyError, FileNotFoundError, URDFError)) else f"{type(exc).__name__}: {exc}"
            msg = f"cannot load model {name!r}: {reason}"[:2000]
            with self._state_lock:
                serving = self._state.batcher is not None
            if serving and self._description_changed and "robot description differs" in reason:
                # a new URDF arrives before the model trained for it (the learner sends the URDF
                # first): not a fault, the serving model stays until its successor is announced
                self.get_logger().warning(f"the model serving was trained for another robot description; it keeps serving until a model for the new one is announced ({reason})"[:2000])
            else:
                self.get_logger().error(msg)
            with self._state_lock:
                if self._state.batcher is None:
                    self._state = _Snapshot(None, None, None, None, msg)
            return False, msg
        with self._state_lock:
            old = self._state.batcher
            self._state = _Snapshot(batcher, chain, loaded.urdf, reach, "")
        self._description_changed = False
        if old is not None:
            old.close()  # answers what it has queued, then stops
        msg = f"loaded {name!r} ({loaded.method}, {model.config.target} targets) for {chain.name} {chain.base_link}->{chain.tip_link}; solver backend {solver.backend}, warm-up {warm:.1f} s"
        self.get_logger().info(msg)
        return True, msg

    # ---------------------------------------------------------------- helpers
    def _target_in_base(self, frame: str, position: np.ndarray, quat: np.ndarray | None, chain: KinematicChain, urdf: str | None):
        """Pose in ``frame`` -> (position (3,), rotation (3, 3) or None) in the chain base; None if unknown frame."""
        R = quaternion_to_matrix(np.asarray(quat, dtype=np.float64)) if quat is not None else None
        if frame in ("", chain.base_link):
            return position, R
        T = None
        if urdf is not None:
            try:
                T = fixed_transform(urdf, chain.base_link, frame)
            except URDFError:
                T = None
        if T is None and self._tf_buffer is not None:
            try:
                from rclpy.time import Time

                # latest transform, no waiting: the listener's own thread fills the buffer
                tf = self._tf_buffer.lookup_transform(chain.base_link, frame, Time())
                t, r = tf.transform.translation, tf.transform.rotation
                T = np.eye(4)
                T[:3, :3] = quaternion_to_matrix(np.array([r.x, r.y, r.z, r.w]))
                T[:3, 3] = [t.x, t.y, t.z]
            except Exception:  # tf2 raises several exception types (LookupException, ...)
                T = None
        if T is None:
            return None
        return T[:3, :3] @ position + T[:3, 3], (T[:3, :3] @ R if R is not None else None)

    def _snapshot(self) -> _Snapshot:
        with self._state_lock:
            return self._state

    @staticmethod
    def _out_of_reach(state: _Snapshot, position: np.ndarray) -> bool:
        if state.reach is None:
            return False
        centre, radius = state.reach
        return bool(np.linalg.norm(position - centre) > radius * (1 + 1e-9) + 1e-9)

    # ---------------------------------------------------------------- services
    def _on_get_ik_solutions(self, request, response):
        R = GetIKSolutions.Response
        try:
            return self._solve_multi(request, response)
        except RequestError as exc:
            response.error_code, response.message = R.INVALID_REQUEST, str(exc)
        except Exception as exc:  # never let a request take the node down
            self.get_logger().error(f"unexpected error: {exc!r}")
            response.error_code, response.message = R.NO_SOLUTION, f"internal error: {exc}"
        return response

    def _solve_multi(self, request, response):
        R = GetIKSolutions.Response
        state = self._snapshot()
        solver, chain = state.batcher, state.chain
        if solver is None or chain is None:
            response.error_code, response.message = R.MODEL_UNAVAILABLE, state.error
            return response
        n = validate_num_solutions(request.num_solutions, int(self.get_parameter("max_solutions").value))
        target = parse_pose(request.target.pose, request.position_only)
        seed = parse_seed(request.seed.name, request.seed.position, chain.joint_names)
        for name in ("position_tolerance", "orientation_tolerance"):
            v = getattr(request, name)
            if not math.isfinite(v) or v < 0:
                raise RequestError(f"{name} must be finite and >= 0 (0 = node default), got {v}")
        frame = request.target.header.frame_id
        converted = self._target_in_base(frame, target.position, target.quaternion, chain, state.urdf)
        if converted is None:
            response.error_code = R.FRAME_TRANSFORM_FAILURE
            response.message = f"cannot transform frame {frame!r} to {chain.base_link!r} (not a URDF link fixed to it{'' if self._tf_buffer is not None else '; tf2 not available'})"
            return response
        pos, rot = converted
        if self._out_of_reach(state, pos):
            response.error_code = R.NO_SOLUTION
            response.message = f"no solution: the target is out of reach (farther than {state.reach[1]:.4f} m from the first joint)"
            return response
        # 0 = default: the node's tolerances, for refined answers and for raw model samples
        prefix = "" if request.refine else "raw_"
        opts = SolverOptions(
            num_solutions=n,
            refine=bool(request.refine),
            position_tolerance=request.position_tolerance or float(self.get_parameter(prefix + "position_tolerance").value),
            orientation_tolerance=request.orientation_tolerance or float(self.get_parameter(prefix + "orientation_tolerance").value),
            distinct_tolerance=float(self.get_parameter("distinct_tolerance").value),
            oversample=int(self.get_parameter("oversample").value),
            random_fraction=self._random_fraction(),
        )
        res = solver.solve_one(pos, rot, seed, opts)  # numpy in: the solver's bookkeeping is numpy
        ok = res.valid[0].numpy()  # numpy out too: torch's per-operation cost exceeds these few values
        if not ok.any():
            response.error_code = R.NO_SOLUTION
            response.message = "no solution within the tolerances and joint limits (target out of reach, or tolerances too tight for an unrefined request)"
            return response
        stamp = self.get_clock().now().to_msg()
        names = list(chain.joint_names)
        for q in res.solutions[0].numpy()[ok].tolist():
            js = JointState(name=names, position=q)
            js.header.stamp = stamp
            js.header.frame_id = chain.base_link
            response.solutions.append(js)
        response.position_errors = res.position_error[0].numpy()[ok].tolist()
        response.orientation_errors = res.orientation_error[0].numpy()[ok].tolist()
        response.branches = [b if b >= 0 else 255 for b in res.branch[0].numpy()[ok].tolist()]
        response.error_code = R.SUCCESS
        response.message = f"{int(ok.sum())} of {n} solution(s)"
        if self._solutions_pub is not None:
            self._publish_solutions(chain, stamp, response.solutions)
        return response

    def _publish_solutions(self, chain: KinematicChain, stamp, solutions) -> None:
        from builtin_interfaces.msg import Duration as DurationMsg
        from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

        msg = JointTrajectory()
        msg.header.stamp = stamp
        msg.header.frame_id = chain.base_link
        msg.joint_names = list(chain.joint_names)
        for i, js in enumerate(solutions):
            pt = JointTrajectoryPoint()
            pt.positions = list(js.position)
            pt.time_from_start = DurationMsg(sec=i + 1)
            msg.points.append(pt)
        self._solutions_pub.publish(msg)

    def _on_get_ik(self, request, response):
        codes = self._moveit
        try:
            state = self._snapshot()
            solver, chain = state.batcher, state.chain
            if solver is None or chain is None:
                response.error_code.val = codes.FAILURE
                return response
            query = parse_position_ik_request(
                request.ik_request,
                chain.joint_names,
                chain.tip_link,
                group_names=self.get_parameter("moveit_group_names").value,
                refuse_avoid_collisions=self.get_parameter("moveit_avoid_collisions").value == "refuse",
            )
            converted = self._target_in_base(query.frame, query.target.position, query.target.quaternion, chain, state.urdf)
            if converted is None:
                response.error_code.val = codes.FRAME_TRANSFORM_FAILURE
                return response
            pos, rot = converted
            if self._out_of_reach(state, pos):
                response.error_code.val = codes.NO_IK_SOLUTION
                return response
            opts = SolverOptions(
                num_solutions=1,
                refine=bool(self.get_parameter("refine").value),
                position_tolerance=float(self.get_parameter("position_tolerance").value),
                orientation_tolerance=float(self.get_parameter("orientation_tolerance").value),
                random_fraction=self._random_fraction(),
            )
            res = solver.solve_one(pos, rot, query.seed, opts)
            if not res.valid[0, 0]:
                response.error_code.val = codes.NO_IK_SOLUTION
                return response
            response.solution.joint_state.header.stamp = self.get_clock().now().to_msg()
            response.solution.joint_state.name = list(chain.joint_names)
            response.solution.joint_state.position = res.solutions[0, 0].tolist()
            response.error_code.val = codes.SUCCESS
        except RequestError as exc:
            response.error_code.val = getattr(codes, getattr(exc, "code", "NO_IK_SOLUTION"))
        except Exception as exc:
            self.get_logger().error(f"unexpected error in get_ik: {exc!r}")
            response.error_code.val = codes.FAILURE
        return response

    async def _on_reload(self, request, response):
        # awaited, not run here: the executor keeps answering IK requests while the model loads
        done = Future(executor=self.executor)
        # a done callback makes set_result (from the reload thread) wake the executor, which then
        # resumes this coroutine; without one the result would wait for the next unrelated event
        done.add_done_callback(lambda _: None)
        self.request_reload(done)
        response.success, response.message = await done
        return response

    def _on_robot_description(self, msg) -> None:
        from rclpy.parameter import Parameter

        if msg.data == self.get_parameter("robot_description").value:
            return
        self.get_logger().info(f"robot_description received ({len(msg.data)} bytes): reloading the model against it")
        self._description_changed = True
        self.set_parameters([Parameter("robot_description", Parameter.Type.STRING, msg.data)])
        self.request_reload()  # a failure is logged; the old model and URDF keep serving

    def _on_model_update(self, msg) -> None:
        from rclpy.parameter import Parameter

        self.get_logger().info(f"model update announced: {msg.data}")
        self.set_parameters([Parameter("model", Parameter.Type.STRING, msg.data)])
        self.request_reload()


def main(args=None) -> int:
    from .runtime import run_node

    return run_node(IKServiceNode, "ik_service_node", args, threads=lambda node: int(node.get_parameter("executor_threads").value))


if __name__ == "__main__":
    sys.exit(main())
