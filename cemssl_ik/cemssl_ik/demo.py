"""``make demo``: the project's main job, end to end on this machine.

For now (foundation): UR3 forward kinematics of a few configurations, then all closed-form IK
solutions of their poses, served over ROS 2 by ``analytic_ik_node`` in a separate process and
requested by a client in this process (DDS on loopback), each solution re-checked with our FK.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import torch

from .kinematics import load_robot, matrix_to_quaternion

DEMO_CONFIGS = [
    ("home (upright)", [0.0, -1.5708, 0.0, -1.5708, 0.0, 0.0]),
    ("reach forward", [0.3, -1.0, 1.2, -1.7, -1.5708, 0.4]),
    ("over the shoulder", [-2.2, -2.3, 1.9, 0.6, 1.2, -0.5]),
]


def _print_fk(chain) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    print(f"== UR3 forward kinematics ({chain.base_link} -> {chain.tip_link}), our batched FK ==")
    q = torch.tensor([c for _, c in DEMO_CONFIGS], dtype=torch.float64)
    fk = chain.forward(q)
    quat = matrix_to_quaternion(fk.rotation)
    targets = []
    for (name, cfg), p, qt in zip(DEMO_CONFIGS, fk.position, quat):
        print(f"  {name:<18} q={[round(v, 3) for v in cfg]}")
        print(f"  {'':<18} -> position [m] {p.numpy().round(5).tolist()}  quaternion xyzw {qt.numpy().round(5).tolist()}")
        targets.append((name, p, qt))
    return targets


def _request_over_ros(targets, chain) -> int:
    import rclpy
    from cemssl_ik_interfaces.srv import GetIKSolutions

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    node_proc = subprocess.Popen([sys.executable, "-m", "cemssl_ik.ros.analytic_ik_node"], env=env)
    rclpy.init()
    client_node = rclpy.create_node("cemssl_ik_demo_client")
    try:
        client = client_node.create_client(GetIKSolutions, "/analytic_ik/get_ik_solutions")
        print("\n== analytic IK over ROS 2: analytic_ik_node (separate process) <- this client ==")
        if not client.wait_for_service(timeout_sec=20.0):
            print("  error: /analytic_ik/get_ik_solutions did not come up within 20 s", file=sys.stderr)
            return 1
        for name, p, qt in targets:
            req = GetIKSolutions.Request()
            req.target.header.frame_id = "base_link"
            req.target.pose.position.x, req.target.pose.position.y, req.target.pose.position.z = (float(v) for v in p)
            o = req.target.pose.orientation
            o.x, o.y, o.z, o.w = (float(v) for v in qt)
            req.num_solutions = 8
            t0 = time.perf_counter()
            future = client.call_async(req)
            rclpy.spin_until_future_complete(client_node, future, timeout_sec=10.0)
            dt = (time.perf_counter() - t0) * 1e3
            res = future.result()
            if res is None:
                print(f"  {name}: no answer within 10 s", file=sys.stderr)
                return 1
            print(f"\n  target '{name}': {len(res.solutions)} solution(s), error_code={res.error_code} ({res.message}), {dt:.1f} ms round trip")
            print(f"    {'branch':>6} " + " ".join(f"{n.replace('_joint', '')[:10]:>10}" for n in chain.joint_names) + "   pos_err[m]  rot_err[rad]  FK check[m]")
            for js, b, pe, oe in zip(res.solutions, res.branches, res.position_errors, res.orientation_errors):
                check = (chain.forward(torch.tensor(js.position, dtype=torch.float64)).position - p).norm().item()
                print(f"    {b:>6} " + " ".join(f"{v:+10.5f}" for v in js.position) + f"   {pe:.1e}     {oe:.1e}       {check:.1e}")
        return 0
    finally:
        client_node.destroy_node()
        rclpy.try_shutdown()
        node_proc.terminate()
        try:
            node_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node_proc.kill()


def main() -> int:
    torch.set_printoptions(precision=5)
    chain = load_robot("ur3")
    targets = _print_fk(chain)
    rc = _request_over_ros(targets, chain)
    if rc == 0:
        print("\nLearned multi-solution models (CEMSSL) arrive with the learning-core issue; see README.")
    return rc


if __name__ == "__main__":
    sys.exit(main())
