"""GetIKSolutions across processes over real DDS: analytic_ik_node in a subprocess, client here."""

from __future__ import annotations

import math

import pytest
import torch
from cemssl_ik.kinematics import load_robot, matrix_to_quaternion
from conftest import requires_ros

pytestmark = requires_ros


@pytest.fixture(scope="module")
def ros_client():
    import rclpy
    from conftest import NodeProcess

    from cemssl_ik_interfaces.srv import GetIKSolutions

    server = NodeProcess("cemssl_ik.ros.analytic_ik_node")
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("test_client", context=context)
    client = node.create_client(GetIKSolutions, "/analytic_ik/get_ik_solutions")
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        if not client.wait_for_service(timeout_sec=30.0):
            pytest.fail("analytic_ik service did not appear within 30 s:\n" + server.close())

        def call(request):
            future = client.call_async(request)
            executor.spin_until_future_complete(future, timeout_sec=15.0)
            assert future.done(), "no response within 15 s"
            return future.result()

        yield GetIKSolutions, call
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        log = server.close()
        assert "Traceback" not in log, log


def make_request(srv, q=(0.4, -1.1, 1.4, -0.9, -1.2, 0.8), n=8, frame="base_link"):
    fk = load_robot("ur3").forward(torch.tensor(q, dtype=torch.float64))
    req = srv.Request()
    req.target.header.frame_id = frame
    req.target.pose.position.x, req.target.pose.position.y, req.target.pose.position.z = fk.position.tolist()
    o = req.target.pose.orientation
    o.x, o.y, o.z, o.w = matrix_to_quaternion(fk.rotation).tolist()
    req.num_solutions = n
    return req, fk


def test_valid_request_returns_all_solutions(ros_client):
    srv, call = ros_client
    req, fk = make_request(srv)
    res = call(req)
    assert res.error_code == srv.Response.SUCCESS, res.message
    assert len(res.solutions) == 8 and sorted(res.branches) == list(range(8))
    chain = load_robot("ur3")
    for js, err in zip(res.solutions, res.position_errors):
        assert list(js.name) == list(chain.joint_names)
        reached = chain.forward(torch.tensor(js.position, dtype=torch.float64)).position
        assert (reached - fk.position).norm() < 1e-9 and err < 1e-9


def test_seed_orders_solutions_and_picks_copies(ros_client):
    srv, call = ros_client
    q = (0.4, -1.1, 1.4, -0.9, -1.2, 0.8)
    req, _ = make_request(srv, q, n=3)
    # seed in shuffled name order, one turn away on wrist_3: the first answer is q with wrist_3 - 2 pi
    seeded = list(q)
    seeded[5] -= 2 * math.pi  # 0.8 - 2 pi = -5.48, inside the +-2 pi limits
    names = list(load_robot("ur3").joint_names)
    req.seed.name = names[::-1] + ["gripper_joint"]
    req.seed.position = seeded[::-1] + [0.0]
    res = call(req)
    assert res.error_code == srv.Response.SUCCESS and len(res.solutions) == 3
    assert max(abs(a - b) for a, b in zip(res.solutions[0].position, seeded)) < 1e-9


@pytest.mark.parametrize(
    "mutate, code, text",
    [
        (lambda r: setattr(r.target.pose.position, "x", math.nan), "INVALID_REQUEST", "finite"),
        (lambda r: setattr(r.target.pose.orientation, "w", 0.0) or setattr(r.target.pose.orientation, "x", 0.0)
         or setattr(r.target.pose.orientation, "y", 0.0) or setattr(r.target.pose.orientation, "z", 0.0), "INVALID_REQUEST", "unit quaternion"),
        (lambda r: setattr(r, "num_solutions", 0), "INVALID_REQUEST", "num_solutions"),
        (lambda r: setattr(r, "num_solutions", 9), "INVALID_REQUEST", "num_solutions"),
        (lambda r: setattr(r.target.header, "frame_id", "camera"), "FRAME_TRANSFORM_FAILURE", "camera"),
        (lambda r: setattr(r, "position_only", True), "INVALID_REQUEST", "position_only"),
        (lambda r: (setattr(r.seed, "name", ["elbow_joint"]), setattr(r.seed, "position", [0.0])), "INVALID_REQUEST", "lacks"),
        (lambda r: (setattr(r.seed, "name", ["a", "b"]), setattr(r.seed, "position", [0.0])), "INVALID_REQUEST", "match"),
        (lambda r: setattr(r.target.pose.position, "x", 3.0), "NO_SOLUTION", "unreachable"),
    ],
)
def test_bad_requests_get_error_codes_and_the_node_survives(ros_client, mutate, code, text):
    srv, call = ros_client
    req, _ = make_request(srv)
    mutate(req)
    res = call(req)
    assert res.error_code == getattr(srv.Response, code), res.message
    assert text in res.message and len(res.solutions) == 0
    ok = call(make_request(srv)[0])  # still serving
    assert ok.error_code == srv.Response.SUCCESS


def test_base_frame_request(ros_client):
    srv, call = ros_client
    q = (0.4, -1.1, 1.4, -0.9, -1.2, 0.8)
    fk = load_robot("ur3", base_link="base").forward(torch.tensor(q, dtype=torch.float64))
    req, _ = make_request(srv, q, frame="base")
    req.target.pose.position.x, req.target.pose.position.y, req.target.pose.position.z = fk.position.tolist()
    o = req.target.pose.orientation
    o.x, o.y, o.z, o.w = matrix_to_quaternion(fk.rotation).tolist()
    res = call(req)
    assert res.error_code == srv.Response.SUCCESS and len(res.solutions) == 8
    assert max(res.position_errors) < 1e-9


def test_config_file_lists_every_parameter_with_its_default():
    """config/analytic_ik.yaml (what the launch files load) sets exactly the declared parameters, at their defaults."""
    from pathlib import Path

    import yaml
    from cemssl_ik.ros.analytic_ik_node import PARAMETERS

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "analytic_ik.yaml").read_text())
    params = cfg["/**"]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    for name, value in params.items():
        assert value == PARAMETERS[name][0], name
