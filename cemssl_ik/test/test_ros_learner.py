"""learner_node across processes over real DDS: it adapts the model to a perturbed simulated UR3,
the running IK service hot-reloads the result and answers exactly for the true arm, and a learner
killed with SIGKILL mid-goal resumes with every recorded sample."""

from __future__ import annotations

import json
import math
import os
import signal
import time

import torch
from cemssl_ik.kinematics import load_robot
from cemssl_ik.kinematics.perturbation import KinematicPerturbation, perturbed_chain, uniform_link_change
from cemssl_ik.learning.sample_log import SampleLog
from conftest import NodeProcess, requires_ros

pytestmark = requires_ros

UR3 = load_robot("ur3")
CHANGE = 0.05  # +5 cm on every link


class ActionClient:
    def __init__(self, action_name: str):
        import rclpy
        from rclpy.action import ActionClient as RclActionClient
        from rclpy.executors import SingleThreadedExecutor

        from cemssl_ik_interfaces.action import Learn

        self.Learn = Learn
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("test_learner_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.client = RclActionClient(self.node, Learn, action_name)
        self.feedback: list = []

    def spin_until(self, future, timeout: float):
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.1)
        return future.done()

    def send(self, timeout: float = 30.0, attempts: int = 4, **fields):
        assert self.client.wait_for_server(timeout_sec=60), "learner action server did not appear"
        goal = self.Learn.Goal(**fields)
        # a server restarted after SIGKILL: discovery may still list the dead one, and a request
        # sent before the new one is matched is lost; send again (a duplicate is refused as busy)
        for _ in range(attempts):
            future = self.client.send_goal_async(goal, feedback_callback=lambda fb: self.feedback.append(fb.feedback))
            if self.spin_until(future, timeout):
                return future.result()
        raise AssertionError(f"goal not acknowledged after {attempts} attempts")

    def result(self, handle, timeout: float):
        future = handle.get_result_async()
        assert self.spin_until(future, timeout), f"no result within {timeout} s"
        return future.result().result

    def close(self):
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _learner(tmp_path, name: str, *params: str) -> NodeProcess:
    return NodeProcess(
        "cemssl_ik.ros.learner_node", "-r", f"__node:={name}",
        "-p", "forward_model:=sim", "-p", f"link_length_change:={CHANGE}", "-p", f"output_dir:={tmp_path}",
        "-p", "eval_targets:=8", "-p", "identify_moves:=40", "-p", f"model_update_topic:=/{name}/model_updates", *params,
    )  # fmt: skip


def test_learner_adapts_the_simulated_arm_and_the_service_hot_reloads(tmp_path):
    from test_ros_ik_service import Client, _request

    from cemssl_ik_interfaces.srv import GetIKSolutions

    learner = _learner(tmp_path, "learner_adapt", "-p", "train_minutes:=1.0")
    service = NodeProcess(
        "cemssl_ik.ros.ik_service_node", "-r", "__node:=ik_adapt",
        "-p", "model:=ur3_fkloss_position", "-p", "robot_description_topic:=/learner_adapt/robot_description",
        "-p", "model_update_topic:=/learner_adapt/model_updates",
    )  # fmt: skip
    client = ActionClient("/learner_adapt/learn")
    ik = Client({"multi": (GetIKSolutions, "/ik_adapt/get_ik_solutions")})
    true_arm = perturbed_chain(UR3, KinematicPerturbation(link_length_changes=uniform_link_change(UR3, CHANGE)))
    try:
        handle = client.send(strategy="calibrate", max_moves=40)
        assert handle.accepted
        res = client.result(handle, timeout=600)
        assert res.success, res.message
        # measured on the simulated arm: the model alone gets >= 10x better, refined answers exact
        assert res.error_before_mm > 20.0, res.message  # +5 cm links: centimetres off
        assert res.error_after_mm <= res.error_before_mm / 10, res.message
        assert res.refined_error_mm <= 1e-3, res.message
        assert res.moves >= 40 and res.checkpoint.endswith(".safetensors") and os.path.isfile(res.checkpoint)
        phases = {fb.phase for fb in client.feedback}
        assert {"measure", "identify", "train", "evaluate"} <= phases, phases
        assert any(math.isfinite(fb.precision_mm) for fb in client.feedback)
        # the service picks up the identified URDF and the new model: refined answers exact on the true arm
        assert ik.wait("multi", timeout=60)
        q_true = (0.4, -1.1, 1.4, -0.9, -1.2, 0.8)
        req, fk = _request(GetIKSolutions, q=q_true, n=4, position_only=True, chain=true_arm)
        deadline = time.monotonic() + 60
        while True:
            answer = ik.call("multi", req)
            if answer.error_code == GetIKSolutions.Response.SUCCESS:
                q = torch.tensor(answer.solutions[0].position, dtype=torch.float64)
                if (true_arm.forward(q).position - fk.position).norm() <= 1e-6:
                    break
            assert time.monotonic() < deadline, f"service did not reload the adapted model: {answer.message}"
            ik.executor.spin_once(timeout_sec=0.5)
    finally:
        client.close()
        ik.close()
        logs = learner.close() + service.close()
    assert "Traceback" not in logs, logs


def test_bad_goals_are_refused_with_a_message(tmp_path):
    learner = _learner(tmp_path, "learner_bad")
    client = ActionClient("/learner_bad/learn")
    try:
        for fields, text in (({"strategy": "dance"}, "strategy"), ({"strategy": "calibration_file"}, "calibration_file"), ({"strategy": "calibrate", "output": "../x"}, "output")):
            handle = client.send(**fields)
            res = client.result(handle, timeout=60)
            assert not res.success and text in res.message, res.message
    finally:
        client.close()
        log = learner.close()
    assert "Traceback" not in log, log


def test_learner_killed_mid_goal_resumes_with_every_sample(tmp_path):
    learner = _learner(tmp_path, "learner_kill", "-p", "train_minutes:=0.3", "-p", "checkpoint_every:=3.0")
    client = ActionClient("/learner_kill/learn")
    log_path = tmp_path / "samples.jsonl"
    try:
        handle = client.send(strategy="calibrate", max_moves=40, output="kill_test")
        assert handle.accepted
        deadline = time.monotonic() + 300
        while not any(fb.phase == "train" for fb in client.feedback) or not list(tmp_path.glob("kill_test.latest")):
            assert time.monotonic() < deadline, "never reached training with a checkpoint"
            client.executor.spin_once(timeout_sec=0.2)
        os.kill(learner.proc.pid, signal.SIGKILL)  # mid-training, samples and a checkpoint on disk
        learner.proc.wait(timeout=10)
        before = SampleLog.open(log_path, dof=6)
        recorded = [json.dumps(s.to_record(), sort_keys=True) for s in before.samples]  # NaN-safe comparison
        before.close()
        assert sum(s.kind == "identify" for s in before.samples) >= 40
        learner = _learner(tmp_path, "learner_kill", "-p", "train_minutes:=0.3", "-p", "checkpoint_every:=3.0")
        client.feedback.clear()
        handle = client.send(strategy="calibrate", max_moves=40, output="kill_test")
        res = client.result(handle, timeout=600)
        assert res.success, res.message
        assert any("resuming from" in fb.message for fb in client.feedback)
        after = SampleLog.open(log_path, dof=6)
        assert [json.dumps(s.to_record(), sort_keys=True) for s in after.samples[: len(recorded)]] == recorded  # nothing lost or changed
        new = [s.kind for s in after.samples[len(recorded) :]]
        assert new and "identify" not in new, "identification samples were measured again"
        after.close()
    finally:
        client.close()
        log = learner.close()
    assert "Traceback" not in log, log
