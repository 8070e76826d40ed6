"""``analytic_ik_node``: the multi-solution IK service backed by the UR closed-form solver.

Serves ``~/get_ik_solutions`` (``cemssl_ik_interfaces/srv/GetIKSolutions``) for a UR3 with the
exact analytic IK: a ground-truth peer for the learned service, and the first real user of the
interface package.  Full-pose requests only (the analytic solver needs an orientation).

Parameters:
    robot (str, "ur3"): robot name (only ur3).
    base_link (str, "base_link"): frame of the answers; requests may also use "base".
    max_solutions (int, 8): upper bound for num_solutions.
    position_tolerance (float, 1e-6 m), orientation_tolerance (float, 1e-6 rad): defaults for 0.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import JointState

from cemssl_ik_interfaces.srv import GetIKSolutions

from ..kinematics import UR_DH, URAnalyticIK, load_robot, nearest_periodic_copy, quaternion_to_matrix, rotation_angle
from ..kinematics.robots import ROBOT_DEFAULT_LINKS
from .conversions import RequestError, order_by_seed, parse_pose, parse_seed, validate_num_solutions

__all__ = ["AnalyticIKNode", "PARAMETERS", "main"]

#: frames of the UR URDF the closed form answers in (UR's base_link, and its Base frame "base")
_FRAMES = ("base_link", "base")
#: the UR tool flange, the tip of the closed form
_TIP = "tool0"

PARAMETERS = {
    # name: (default, description, read_only)
    "robot": ("ur3", "robot name (ur3)", True),
    "base_link": ("base_link", "chain base: base_link or base", True),
    "max_solutions": (8, "largest num_solutions accepted (1..8)", False),
    "position_tolerance": (1e-6, "default position tolerance [m]", False),
    "orientation_tolerance": (1e-6, "default orientation tolerance [rad]", False),
}


class AnalyticIKNode(Node):
    """Closed-form UR3 IK behind ``~/get_ik_solutions``; see the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__("analytic_ik", **kwargs)
        for name, (default, description, read_only) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=read_only))
        self.add_on_set_parameters_callback(self._validate_parameters)
        robot = self.get_parameter("robot").value
        base = self.get_parameter("base_link").value
        shipped_ur = sorted(set(UR_DH) & set(ROBOT_DEFAULT_LINKS))  # a closed form and a URDF to check it with
        if robot not in shipped_ur or base not in _FRAMES:
            raise ValueError(f"analytic_ik_node supports robot {' / '.join(shipped_ur)} with base_link {' or '.join(_FRAMES)}, got {robot!r} / {base!r}")
        # the chain of each frame a request may use: errors are measured in the request's frame
        self._chains = {frame: load_robot(robot, base_link=frame, tip_link=_TIP) for frame in _FRAMES}
        self._chain = self._chains[base]
        self._ik = URAnalyticIK(robot)
        self._srv = self.create_service(GetIKSolutions, "~/get_ik_solutions", self._on_request)
        self._JointState = JointState
        self._Response = GetIKSolutions.Response
        self.get_logger().info(f"analytic IK for {robot} {base}->{_TIP} ready on {self._srv.srv_name}")

    def _validate_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == "max_solutions" and not (isinstance(p.value, int) and 1 <= p.value <= 8):
                return SetParametersResult(successful=False, reason="max_solutions must be an integer in 1..8")
            if p.name in ("position_tolerance", "orientation_tolerance") and not (isinstance(p.value, float) and p.value > 0 and math.isfinite(p.value)):
                return SetParametersResult(successful=False, reason=f"{p.name} must be a positive finite float")
        return SetParametersResult(successful=True)

    def _on_request(self, request, response):
        R = self._Response
        try:
            response = self._solve(request, response)
        except RequestError as exc:
            response.error_code, response.message = R.INVALID_REQUEST, str(exc)
        except Exception as exc:  # never let a request take the node down
            self.get_logger().error(f"unexpected error while solving: {exc!r}")
            response.error_code, response.message = R.NO_SOLUTION, f"internal error: {exc}"
        return response

    def _solve(self, request, response):
        R = self._Response
        frame = request.target.header.frame_id
        if frame not in ("", *_FRAMES):
            response.error_code = R.FRAME_TRANSFORM_FAILURE
            response.message = f"cannot transform from frame {frame!r}: this node knows 'base_link' and 'base' only"
            return response
        if request.position_only:
            raise RequestError("the analytic solver needs a full pose; position_only is served by the learned IK node")
        n = validate_num_solutions(request.num_solutions, int(self.get_parameter("max_solutions").value))
        target = parse_pose(request.target.pose, position_only=False)
        seed = parse_seed(request.seed.name, request.seed.position, self._chain.joint_names)
        pos_tol = request.position_tolerance or self.get_parameter("position_tolerance").value
        rot_tol = request.orientation_tolerance or self.get_parameter("orientation_tolerance").value
        if not (math.isfinite(pos_tol) and math.isfinite(rot_tol)) or pos_tol < 0 or rot_tol < 0:
            raise RequestError("tolerances must be finite and >= 0")
        pos = torch.tensor(target.position, dtype=torch.float64)[None]
        rot = quaternion_to_matrix(torch.tensor(target.quaternion, dtype=torch.float64))[None]
        res = self._ik.solve(pos, rot, frame=frame or self._chain.base_link)
        sols, branches = res.solutions[0][res.valid[0]], torch.nonzero(res.valid[0]).flatten()
        ref = torch.tensor(seed if seed is not None else np.zeros(6), dtype=torch.float64)
        sols, within = nearest_periodic_copy(sols, ref, self._chain.lower, self._chain.upper, self._chain.periodic)
        sols, branches = sols[within], branches[within]
        # errors measured in the chain's own FK, in the frame of the request
        frame_chain = self._chains[frame or self._chain.base_link]
        fk = frame_chain.forward(sols)
        pos_err = (fk.position - pos).norm(dim=-1)
        rot_err = rotation_angle(fk.rotation, rot.expand(len(sols), 3, 3))
        ok = (pos_err <= pos_tol) & (rot_err <= rot_tol)
        sols, branches, pos_err, rot_err = sols[ok], branches[ok], pos_err[ok], rot_err[ok]
        order = order_by_seed(sols.numpy(), seed)[:n]
        if len(order) == 0:
            response.error_code, response.message = R.NO_SOLUTION, "target unreachable (no analytic solution within the joint limits)"
            return response
        stamp = self.get_clock().now().to_msg()
        for i in order:
            js = self._JointState()
            js.header.stamp = stamp
            js.header.frame_id = frame or self._chain.base_link
            js.name = list(self._chain.joint_names)
            js.position = sols[i].tolist()
            response.solutions.append(js)
        response.position_errors = pos_err[order].tolist()
        response.orientation_errors = rot_err[order].tolist()
        response.branches = [int(b) for b in branches[order]]
        response.error_code, response.message = R.SUCCESS, f"{len(order)} solution(s)"
        return response


def main(args=None) -> int:
    from .runtime import run_node

    return run_node(AnalyticIKNode, "analytic_ik_node", args, threads=1)


if __name__ == "__main__":
    sys.exit(main())
