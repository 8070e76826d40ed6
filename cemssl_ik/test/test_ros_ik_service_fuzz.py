"""ik_service_node against hostile input, across processes over real DDS.

A few hundred generated requests (valid, malformed, out of reach, absurd seeds and tolerances) at a
live node with the shipped pose model: every answer has a known code, every returned solution is
checked with FK; a reload keeps the node answering; hostile model files never take it down.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time

import numpy as np
import pytest
import torch
from cemssl_ik.kinematics import load_robot, matrix_to_quaternion, quaternion_to_matrix, rotation_angle
from cemssl_ik.resources import find_package_file
from conftest import NodeProcess, requires_ros
from test_ros_ik_service import Client

pytestmark = requires_ros

UR3 = load_robot("ur3")
BASE = load_robot("ur3", base_link="base")
MODEL = "ur3_regression_pose"
NUM_REQUESTS = 300


@pytest.fixture(scope="module")
def live():
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from cemssl_ik_interfaces.srv import GetIKSolutions

    server = NodeProcess(
        "cemssl_ik.ros.ik_service_node", "-r", "__node:=ik_fuzz",
        "-p", f"model:={MODEL}", "-p", "max_solutions:=16", "-p", "model_update_topic:=/ik_fuzz_updates",
    )  # fmt: skip
    client = Client({"multi": (GetIKSolutions, "/ik_fuzz/get_ik_solutions"), "reload": (Trigger, "/ik_fuzz/reload")})
    client.update_pub = client.node.create_publisher(String, "/ik_fuzz_updates", 10)
    try:
        if not client.wait("multi", timeout=120):
            pytest.fail("ik_service_node did not come up:\n" + server.close())
        # one call first: wait_for_service can return before the response path is matched, and a
        # burst sent in that window may lose a response (as in test_ros_ik_service.py)
        warm = GetIKSolutions.Request()
        warm.target.header.frame_id = "base_link"
        warm.target.pose.position.x, warm.target.pose.position.z, warm.num_solutions, warm.position_only = 0.2, 0.2, 1, True
        client.call("multi", warm, timeout=60)
        yield GetIKSolutions, Trigger, client, server
    finally:
        client.close()
        log = server.close()
        assert "Traceback" not in log, log
        assert server.proc.returncode == 0, log


def _fill(req, position, quat, frame="base_link"):
    req.target.header.frame_id = frame
    req.target.pose.position.x, req.target.pose.position.y, req.target.pose.position.z = (float(v) for v in position)
    o = req.target.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in quat)


def _hostile_requests(srv, n: int, seed: int = 0):
    """(request, expectation) pairs; expectation: 'valid' (reachable, well-formed: must succeed),
    'invalid' (malformed: INVALID_REQUEST), 'any' (answer must be consistent, code free)."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    qs = UR3.sample_configurations(n, gen, limits="learning")
    fk = UR3.forward(qs)
    quats = matrix_to_quaternion(fk.rotation)
    weird = [math.nan, math.inf, -math.inf, 1e308, -1e308, 1e6, 5.0, -0.0, 1e-300]
    out = []
    for i in range(n):
        req = srv.Request()
        _fill(req, fk.position[i].tolist(), quats[i].tolist())
        req.num_solutions = rng.choice([1, 2, 4, 8, 16])
        req.refine = True
        kind = rng.randrange(12)
        expect = "valid"
        if kind == 0:  # non-finite or absurd position
            setattr(req.target.pose.position, rng.choice("xyz"), rng.choice(weird))
            expect = "any"
        elif kind == 1:  # not a unit quaternion
            o = req.target.pose.orientation
            o.x, o.y, o.z, o.w = rng.choice([(0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0), (math.nan, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 1e308)])
            expect = "invalid"
        elif kind == 2:  # num_solutions out of range
            req.num_solutions = rng.choice([0, 17, 1000, 2**32 - 1])
            expect = "invalid"
        elif kind == 3:  # seed with wrong names, lengths or non-finite values
            names = list(UR3.joint_names)
            variant = rng.randrange(4)
            if variant == 0:
                req.seed.name, req.seed.position = names[:5], [0.0] * 5
            elif variant == 1:
                req.seed.name, req.seed.position = names, [0.0] * 7
            elif variant == 2:
                req.seed.name, req.seed.position = names + [names[0]], [0.0] * 7
            else:
                req.seed.name, req.seed.position = names, [rng.choice([math.nan, math.inf, -math.inf])] + [0.0] * 5
            expect = "invalid"
        elif kind == 4:  # absurd but finite seed values (far outside the limits)
            req.seed.name = list(UR3.joint_names)[::-1]
            req.seed.position = [rng.choice([0.0, 12.0, -100.0, 1e308, -1e308, 7.0]) for _ in range(6)]
            expect = "any"
        elif kind == 5:  # tolerances
            v = rng.choice([-1.0, math.nan, math.inf, -math.inf])
            setattr(req, rng.choice(["position_tolerance", "orientation_tolerance"]), v)
            expect = "invalid"
        elif kind == 6:  # unknown or foreign frame
            req.target.header.frame_id = rng.choice(["camera_link", "/base_link", "world", "x" * 10000, "\u00e9\u00e8"])
            expect = "any"
        elif kind == 7:  # the same pose in the UR "base" frame (a URDF link fixed to base_link)
            fb = BASE.forward(qs[i])
            _fill(req, fb.position.tolist(), matrix_to_quaternion(fb.rotation).tolist(), frame="base")
        elif kind == 8:  # out of reach
            _fill(req, [rng.choice([2.0, -3.0, 1e6]), 0.0, 0.1], quats[i].tolist())
            req.refine = rng.random() < 0.5
            req.position_tolerance = rng.choice([0.0, 1e9])
            expect = "any"
        elif kind == 9:  # unrefined, node default tolerances
            req.refine = False
            expect = "any"
        elif kind == 10:  # position only, orientation garbage (ignored)
            req.position_only = True
            req.target.pose.orientation.w = math.nan
        out.append((req, expect))
    return out


def _check_answer(srv, req, res, expect):
    R = srv.Response
    codes = {R.SUCCESS, R.NO_SOLUTION, R.INVALID_REQUEST, R.FRAME_TRANSFORM_FAILURE, R.MODEL_UNAVAILABLE}
    assert res.error_code in codes, (res.error_code, res.message)
    assert res.error_code != R.MODEL_UNAVAILABLE, res.message
    if expect == "valid":
        assert res.error_code == R.SUCCESS, res.message
    if expect == "invalid":
        assert res.error_code == R.INVALID_REQUEST and res.message, res.message
    n = len(res.solutions)
    assert len(res.position_errors) == len(res.orientation_errors) == len(res.branches) == n
    if res.error_code != R.SUCCESS:
        assert n == 0 and res.message
        return
    assert 1 <= n <= req.num_solutions
    chain = BASE if req.target.header.frame_id == "base" else UR3
    p = req.target.pose.position
    target = torch.tensor([p.x, p.y, p.z], dtype=torch.float64)
    pos_tol = req.position_tolerance or (1e-6 if req.refine else 0.1)
    rot_tol = req.orientation_tolerance or (1e-5 if req.refine else 0.5)
    q = torch.tensor([list(js.position) for js in res.solutions], dtype=torch.float64)
    assert all(list(js.name) == list(UR3.joint_names) for js in res.solutions)
    assert bool(UR3.within_limits(q).all()), q
    out = chain.forward(q)
    pos_err = (out.position - target).norm(dim=-1)
    assert bool((pos_err <= pos_tol * (1 + 1e-6) + 1e-12).all()), (pos_err, pos_tol)
    assert np.allclose(pos_err.numpy(), res.position_errors, atol=1e-9, rtol=1e-6)
    if not req.position_only:
        o = req.target.pose.orientation
        quat = torch.tensor([o.x, o.y, o.z, o.w], dtype=torch.float64)
        rot_err = rotation_angle(out.rotation, quaternion_to_matrix(quat / quat.norm()).expand(n, 3, 3))
        assert bool((rot_err <= rot_tol * (1 + 1e-6) + 1e-12).all()), (rot_err, rot_tol)


def test_fuzzed_requests_get_consistent_answers(live):
    srv, _, client, _ = live
    requests = _hostile_requests(srv, NUM_REQUESTS)
    codes = []
    for start in range(0, len(requests), 50):  # bursts of 50, every answer checked
        chunk = requests[start : start + 50]
        answers = client.call_many("multi", [r for r, _ in chunk], timeout=120)
        for (req, expect), res in zip(chunk, answers):
            _check_answer(srv, req, res, expect)
            codes.append(res.error_code)
    counts = {c: codes.count(c) for c in set(codes)}
    # the mix exercises every path: many checked solutions, refusals, unreachable and unknown frames
    assert counts.get(srv.Response.SUCCESS, 0) >= NUM_REQUESTS // 3, counts
    for code in (srv.Response.INVALID_REQUEST, srv.Response.NO_SOLUTION, srv.Response.FRAME_TRANSFORM_FAILURE):
        assert counts.get(code, 0) >= 5, counts
    # and the node still answers a plain request exactly
    req, expect = _hostile_requests(srv, 1, seed=123)[0]
    req.seed.name, req.seed.position, req.num_solutions = [], [], 4
    _check_answer(srv, req, client.call("multi", req), "any")


def test_reload_does_not_block_requests(live):
    """~/reload loads in the background: requests sent after it are answered before it finishes."""
    srv, Trigger, client, _ = live
    reload_future = client.clients["reload"].call_async(Trigger.Request())
    requests = [r for r, e in _hostile_requests(srv, 8, seed=7) if e == "valid"][:3]
    futures = [client.clients["multi"].call_async(r) for r in requests]
    answered_first: set[int] = set()
    deadline = time.monotonic() + 120
    while not reload_future.done() and time.monotonic() < deadline:
        client.executor.spin_once(timeout_sec=0.05)
        if not reload_future.done():
            answered_first |= {i for i, f in enumerate(futures) if f.done()}
    assert reload_future.done(), "~/reload not answered"
    assert reload_future.result().success, reload_future.result().message
    assert len(answered_first) == len(requests), "requests waited for the reload"
    for req, f in zip(requests, futures):
        _check_answer(srv, req, f.result(), "valid")


def _hostile_model_files(tmp_path):
    """(name, path) of broken copies of the shipped model: each must be refused, none may kill the node."""
    src = find_package_file(f"models/{MODEL}.json")
    meta = json.loads(src.read_text())
    weights = src.with_suffix(".safetensors")
    cases = {}

    def write(name, metadata=None, text=None, weights_bytes=None):
        base = tmp_path / name
        base.with_suffix(".json").write_text(text if text is not None else json.dumps(metadata))
        if weights_bytes is None:
            shutil.copyfile(weights, base.with_suffix(".safetensors"))
        else:
            base.with_suffix(".safetensors").write_bytes(weights_bytes)
        cases[name] = base

    write("robot_null", {**meta, "robot": None})
    write("deep_json", text='{"a": ' * 200_000 + "1" + "}" * 200_000)
    write("not_json", text="\x00\xff garbage")
    write("truncated_weights", meta, weights_bytes=weights.read_bytes()[:100])
    write("header_too_long", meta, weights_bytes=(2**62).to_bytes(8, "little") + b"{}")
    return cases


def test_hostile_model_files_never_take_the_node_down(live, tmp_path):
    from std_msgs.msg import String

    srv, Trigger, client, server = live
    good = _hostile_requests(srv, 4, seed=11)
    good = [r for r, e in good if e == "valid"][:1]
    for name, path in _hostile_model_files(tmp_path).items():
        client.update_pub.publish(String(data=str(path)))  # announced (background reload) ...
        res = client.call("multi", good[0])
        assert res.error_code == srv.Response.SUCCESS, (name, res.message)
        trig = client.call("reload", Trigger.Request(), timeout=60)  # ... and reloaded explicitly
        assert not trig.success and "cannot load model" in trig.message, (name, trig.message)
        assert "\n" not in trig.message
        assert server.proc.poll() is None, f"node exited on {name}"
        res = client.call("multi", good[0])
        assert res.error_code == srv.Response.SUCCESS, (name, res.message)  # the old model keeps serving
