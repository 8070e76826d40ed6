"""``make demo``: the main job end to end on this machine, in two parts.

1. Multi-solution IK over ROS 2: ``ik_service_node`` with the shipped UR3 full-pose model and
   ``analytic_ik_node`` (closed-form ground truth) in separate processes; as a client in this
   process (DDS on loopback) it asks both for up to 8 solutions of a few UR3 targets, prints one
   table per target (joint values, errors, branch) and how many of the analytic solutions the
   learned service found, and writes a PNG of the learned solutions drawn as arm overlays.
2. The robot re-learns its IK: a simulated UR3 (MuJoCo) whose links are 5 cm longer than its URDF
   says; the IK service (position model) answers for the nominal arm, centimetres off on the real
   one; ``learner_node`` measures the arm, identifies its kinematics and fine-tunes the model
   (progress printed), the service hot-reloads the result, and the same targets are reached again,
   every error measured on the simulated arm.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from .kinematics import load_robot, matrix_to_quaternion

MODEL = os.environ.get("CEMSSL_DEMO_MODEL", "ur3_regression_pose")
#: minutes the learner fine-tunes in part 2
TRAIN_MINUTES = float(os.environ.get("CEMSSL_DEMO_TRAIN_MINUTES", "2.0"))
LINK_CHANGE = 0.05  # m added to every link of the simulated arm
OUT_DIR = Path(os.environ.get("CEMSSL_DEMO_OUT", "out"))
DEMO_CONFIGS = [
    ("reach forward", [0.3, -1.0, 1.2, -1.7, -1.5708, 0.4]),
    ("over the shoulder", [-2.2, -2.3, 1.9, 0.6, 1.2, -0.5]),
    ("low and to the side", [1.4, -0.4, 1.9, -0.2, 0.9, 2.0]),
]


def _start(module: str, *ros_args: str) -> subprocess.Popen:
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    cmd = [sys.executable, "-m", module, "--ros-args", "--log-level", "warn", *ros_args]
    return subprocess.Popen(cmd, env=env)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _match_count(learned: list[list[float]], analytic: list[list[float]], tol: float = 1e-3) -> int:
    """How many analytic solutions (modulo 2*pi) have a learned solution within tol (rad, max joint)."""
    found = 0
    for a in analytic:
        for s in learned:
            if max(abs(math.remainder(x - y, 2 * math.pi)) for x, y in zip(a, s)) < tol:
                found += 1
                break
    return found


def main() -> int:
    code = multi_solution_demo()
    return code or adaptation_demo()


def multi_solution_demo() -> int:
    import rclpy

    from cemssl_ik_interfaces.srv import GetIKSolutions

    from .evaluation.plots import plot_arm_overlays

    chain = load_robot("ur3")
    learned_proc = _start("cemssl_ik.ros.ik_service_node", "-p", f"model:={MODEL}")
    analytic_proc = _start("cemssl_ik.ros.analytic_ik_node")
    rclpy.init()
    node = rclpy.create_node("cemssl_ik_demo_client")
    try:
        learned = node.create_client(GetIKSolutions, "/cemssl_ik/get_ik_solutions")
        analytic = node.create_client(GetIKSolutions, "/analytic_ik/get_ik_solutions")
        print(f"== cemssl_ik demo: UR3 multi-solution IK over ROS 2 (model {MODEL!r} vs closed form) ==")
        for name, client in (("ik_service_node", learned), ("analytic_ik_node", analytic)):
            if not client.wait_for_service(timeout_sec=60.0):
                print(f"error: {name} did not come up within 60 s", file=sys.stderr)
                return 1

        def call(client, req):
            t0 = time.perf_counter()
            future = client.call_async(req)
            rclpy.spin_until_future_complete(node, future, timeout_sec=30.0)
            return future.result(), (time.perf_counter() - t0) * 1e3

        q = torch.tensor([c for _, c in DEMO_CONFIGS], dtype=torch.float64)
        fk = chain.forward(q)
        quat = matrix_to_quaternion(fk.rotation)
        png = None
        for i, (name, _) in enumerate(DEMO_CONFIGS):
            req = GetIKSolutions.Request()
            req.target.header.frame_id = "base_link"
            req.target.pose.position.x, req.target.pose.position.y, req.target.pose.position.z = fk.position[i].tolist()
            o = req.target.pose.orientation
            o.x, o.y, o.z, o.w = quat[i].tolist()
            req.num_solutions, req.refine = 8, True
            res, ms = call(learned, req)
            ref, _ = call(analytic, req)
            if res is None or ref is None:
                print(f"error: no answer for target {name!r}", file=sys.stderr)
                return 1
            p = fk.position[i].tolist()
            print(f"\ntarget '{name}': position [m] {[round(v, 4) for v in p]}, quaternion xyzw {[round(v, 4) for v in quat[i].tolist()]}")
            print(f"  learned service: {len(res.solutions)} solution(s) in {ms:.1f} ms ({res.message}); analytic: {len(ref.solutions)} exist")
            learned_q = [list(js.position) for js in res.solutions]
            found = _match_count(learned_q, [list(js.position) for js in ref.solutions])
            print(f"  analytic solutions found by the learned service: {found}/{len(ref.solutions)}")
            if learned_q:
                print(f"    {'branch':>6} " + " ".join(f"{n.replace('_joint', '')[:10]:>10}" for n in chain.joint_names) + "   pos_err[m]  rot_err[rad]")
                for js, b, pe, oe in zip(res.solutions, res.branches, res.position_errors, res.orientation_errors):
                    print(f"    {b:>6} " + " ".join(f"{v:+10.5f}" for v in js.position) + f"   {pe:.1e}     {oe:.1e}")
            if i == 0 and learned_q:
                png = plot_arm_overlays(chain, torch.tensor(learned_q), p, OUT_DIR / "demo_solutions.png", labels=[f"branch {b}" for b in res.branches], title=f"UR3: {len(learned_q)} learned solutions for '{name}'")
        if png is not None:
            print(f"\nwrote {png} (the learned solutions of the first target as arm overlays)")
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        _stop(learned_proc)
        _stop(analytic_proc)


def adaptation_demo() -> int:
    """Part 2 (see the module docstring)."""
    import rclpy
    from rclpy.action import ActionClient

    from cemssl_ik_interfaces.action import Learn
    from cemssl_ik_interfaces.srv import GetIKSolutions

    from .kinematics.perturbation import KinematicPerturbation, perturbed_chain, uniform_link_change

    nominal = load_robot("ur3")
    true_arm = perturbed_chain(nominal, KinematicPerturbation(link_length_changes=uniform_link_change(nominal, LINK_CHANGE)))
    run_dir = OUT_DIR / "learner" / time.strftime("run-%Y%m%d-%H%M%S")
    learner_proc = _start(
        "cemssl_ik.ros.learner_node", "-p", "forward_model:=sim", "-p", f"link_length_change:={LINK_CHANGE}",
        "-p", f"output_dir:={run_dir}", "-p", f"train_minutes:={TRAIN_MINUTES}", "-p", "eval_targets:=10",
        "-p", "model_update_topic:=/cemssl_demo/model_updates",
    )  # fmt: skip
    service_proc = _start(
        "cemssl_ik.ros.ik_service_node", "-r", "__node:=cemssl_ik_adapt", "-p", "model:=ur3_fkloss_position",
        "-p", "robot_description_topic:=/cemssl_learner/robot_description", "-p", "model_update_topic:=/cemssl_demo/model_updates",
    )  # fmt: skip
    rclpy.init()
    node = rclpy.create_node("cemssl_ik_adapt_demo_client")
    try:
        service = node.create_client(GetIKSolutions, "/cemssl_ik_adapt/get_ik_solutions")
        learner = ActionClient(node, Learn, "/cemssl_learner/learn")
        print(f"\n== the robot re-learns its IK: a simulated UR3 with every link {LINK_CHANGE * 100:.0f} cm longer than its URDF ==")
        if not service.wait_for_service(timeout_sec=60.0) or not learner.wait_for_server(timeout_sec=60.0):
            print("error: ik_service_node or learner_node did not come up within 60 s", file=sys.stderr)
            return 1
        q = torch.tensor([c for _, c in DEMO_CONFIGS], dtype=torch.float64)
        targets = true_arm.forward(q).position  # where the real (simulated) arm can reach

        def reach_errors() -> list[float]:
            errors = []
            for p in targets:
                req = GetIKSolutions.Request()
                req.target.header.frame_id = "base_link"
                req.target.pose.position.x, req.target.pose.position.y, req.target.pose.position.z = p.tolist()
                req.position_only, req.num_solutions, req.refine = True, 1, True
                future = service.call_async(req)
                rclpy.spin_until_future_complete(node, future, timeout_sec=30.0)
                res = future.result()
                if res is None or not res.solutions:
                    errors.append(math.nan)
                    continue
                reached = true_arm.forward(torch.tensor(res.solutions[0].position, dtype=torch.float64)).position
                errors.append(float((reached - p).norm()))
            return errors

        before = reach_errors()
        print("service's refined answers, error on the simulated arm [mm]: " + ", ".join(f"{e * 1e3:.3f}" for e in before))
        goal = Learn.Goal(strategy="calibrate", max_moves=60, max_minutes=TRAIN_MINUTES)
        last = [""]

        def on_feedback(msg) -> None:
            fb = msg.feedback
            line = f"  [{fb.phase}] moves {fb.moves_used}" + (f", measured {fb.precision_mm:.3f} mm" if math.isfinite(fb.precision_mm) else "") + (f": {fb.message}" if fb.message else "")
            if fb.phase != "train" or "step" not in fb.message or fb.message.split(",")[0].endswith("00"):
                if line != last[0]:
                    print(line)
                    last[0] = line

        print(f"learner: calibrate (60 moves), then {TRAIN_MINUTES:g} min of fine-tuning")
        sent = learner.send_goal_async(goal, feedback_callback=on_feedback)
        rclpy.spin_until_future_complete(node, sent, timeout_sec=60.0)
        handle = sent.result()
        if handle is None or not handle.accepted:
            print("error: the learner refused the goal", file=sys.stderr)
            return 1
        done = handle.get_result_async()
        rclpy.spin_until_future_complete(node, done, timeout_sec=TRAIN_MINUTES * 60 + 600)
        if done.result() is None:
            print("error: no result from the learner", file=sys.stderr)
            return 1
        res = done.result().result
        print(f"learner: {res.message} ({res.moves} moves, {res.minutes:.1f} min)")
        if not res.success:
            return 1
        deadline = time.monotonic() + 60
        after = reach_errors()
        while max(after) > 1e-6 and time.monotonic() < deadline:  # the service reloads in the background
            rclpy.spin_once(node, timeout_sec=0.5)
            after = reach_errors()
        print("service's refined answers after the reload, error on the simulated arm [mm]: " + ", ".join(f"{e * 1e3:.6f}" for e in after))
        print(f"samples and checkpoints: {run_dir}")
        return 0 if max(after) <= 1e-6 else 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        _stop(service_proc)
        _stop(learner_proc)


if __name__ == "__main__":
    sys.exit(main())
