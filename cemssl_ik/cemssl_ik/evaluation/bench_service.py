"""Load benchmark of ``ik_service_node`` over DDS: clients in separate processes, latency and throughput.

``run_service_benchmark`` starts the node, then for every (K, number of clients) cell starts that
many client processes (``python -m cemssl_ik.evaluation.bench_service client ...``), each sending
its share of the requests back to back for random reachable UR3 targets, and collects per-request
latencies (ms) and failures.  Nothing leaves loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["run_service_benchmark"]


def _client_main(argv: list[str]) -> int:
    import argparse

    import rclpy
    import torch

    from cemssl_ik_interfaces.srv import GetIKSolutions

    from ..kinematics import load_robot, matrix_to_quaternion

    ap = argparse.ArgumentParser()
    ap.add_argument("--service", required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--position-only", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    chain = load_robot("ur3")
    q = chain.sample_configurations(a.requests, torch.Generator().manual_seed(a.seed))
    fk = chain.forward(q)
    quat = matrix_to_quaternion(fk.rotation)
    rclpy.init()
    node = rclpy.create_node(f"bench_client_{os.getpid()}")
    # Responses to every client of a service reach every client's response reader (DDS filters
    # them by request id only after they arrive); with the default depth of 10, a burst of other
    # clients' answers can push this client's own answer out.  Keep a deep queue.
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    client = node.create_client(GetIKSolutions, a.service, qos_profile=QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    lat, codes, counts, messages = [], [], [], []
    start = end = time.time()
    try:
        if not client.wait_for_service(timeout_sec=60):
            raise SystemExit("service not available")
        # Warm-up (not measured): wait_for_service only means the server's request reader is
        # matched; the server may not have matched this client's response reader yet, and DDS then
        # drops the response.  One answered request proves both directions are connected.
        for _ in range(20):
            warm = GetIKSolutions.Request()
            warm.target.header.frame_id = "base_link"
            warm.target.pose.position.x, warm.target.pose.position.y, warm.target.pose.position.z = fk.position[0].tolist()
            warm.target.pose.orientation.w = 1.0
            warm.num_solutions, warm.position_only = 1, True
            fut = client.call_async(warm)
            rclpy.spin_until_future_complete(node, fut, timeout_sec=2)
            if fut.done():
                break
            client.remove_pending_request(fut)
        start = time.time()
        for i in range(a.requests):
            req = GetIKSolutions.Request()
            req.target.header.frame_id = "base_link"
            req.target.pose.position.x, req.target.pose.position.y, req.target.pose.position.z = fk.position[i].tolist()
            o = req.target.pose.orientation
            o.x, o.y, o.z, o.w = quat[i].tolist()
            req.num_solutions, req.refine, req.position_only = a.k, True, a.position_only
            t0 = time.perf_counter()
            fut = client.call_async(req)
            rclpy.spin_until_future_complete(node, fut, timeout_sec=30)
            lat.append((time.perf_counter() - t0) * 1e3)
            res = fut.result()
            codes.append(res.error_code if res is not None else -999)
            if res is None or res.error_code != 1:
                messages.append(f"target seed {a.seed} #{i}: " + (f"{res.error_code}: {res.message}" if res is not None else "no answer within 30 s"))
            counts.append(len(res.solutions) if res is not None else 0)
        end = time.time()
    finally:
        # results first: a fault while tearing the node down must not lose the measurements
        Path(a.out).write_text(json.dumps({"latency_ms": lat, "codes": codes, "solutions": counts, "messages": messages, "start": start, "end": end}))
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def run_service_benchmark(
    model: str = "ur3_regression_pose",
    ks: tuple[int, ...] = (1, 16, 64),
    clients: tuple[int, ...] = (1, 4, 16),
    requests_per_cell: int = 1000,
    position_only: bool = False,
    progress: bool = True,
    server_params: tuple[str, ...] = (),
) -> list[dict]:
    """Latency / throughput per (K, clients) cell; see module docstring."""
    import random

    import numpy as np

    # loopback only, and a domain of this run's own unless the caller chose one (tools/env.sh does)
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
    max_k = max(ks)
    # a namespace of this run's own: a server left running from elsewhere in the same domain (same
    # service name) would otherwise answer some of the requests and silently skew the figures
    namespace = f"/cemssl_bench_{os.getpid()}"
    server = subprocess.Popen(
        [sys.executable, "-m", "cemssl_ik.ros.ik_service_node", "--ros-args", "--log-level", "warn", "-r", f"__ns:={namespace}", "-p", f"model:={model}", "-p", f"max_solutions:={max_k}", *(a for p in server_params for a in ("-p", p))],
        env=env,
    )
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for k in ks:
                for n in clients:
                    per = max(1, requests_per_cell // n)
                    procs, outs = [], []
                    t0 = time.perf_counter()
                    for c in range(n):
                        out = Path(tmp) / f"k{k}_n{n}_c{c}.json"
                        cmd = [sys.executable, "-m", "cemssl_ik.evaluation.bench_service", "client", "--service", f"{namespace}/cemssl_ik/get_ik_solutions", "--k", str(k), "--requests", str(per), "--seed", str(1000 * c + k), "--out", str(out)]
                        if position_only:
                            cmd.append("--position-only")
                        procs.append(subprocess.Popen(cmd, env=env))
                        outs.append(out)
                    for p in procs:
                        p.wait(timeout=3600)
                    wall = time.perf_counter() - t0
                    lat, codes, sols, starts, ends, msgs = [], [], [], [], [], []
                    for c, (p, out) in enumerate(zip(procs, outs)):
                        if not out.is_file():
                            msgs.append(f"client {c} exited with code {p.returncode} before writing any result")
                            continue
                        if p.returncode != 0:
                            msgs.append(f"client {c} exited with code {p.returncode} after writing its results")
                        d = json.loads(out.read_text())
                        lat += d["latency_ms"]
                        codes += d["codes"]
                        sols += d["solutions"]
                        msgs += d.get("messages", [])
                        starts.append(d["start"])
                        ends.append(d["end"])
                    # throughput over the measured window (client start-up excluded)
                    wall = (max(ends) - min(starts)) if starts else wall
                    lat_a = np.array(lat) if lat else np.array([np.nan])
                    failures = per * n - sum(1 for c in codes if c == 1)
                    row = {
                        "k": k,
                        "clients": n,
                        "requests": per * n,
                        "answered": len(codes),
                        "failures": failures,
                        "p50_ms": float(np.percentile(lat_a, 50)),
                        "p99_ms": float(np.percentile(lat_a, 99)),
                        "requests_per_second": len(codes) / wall if wall > 0 else float("nan"),
                        "mean_solutions": float(np.mean(sols)) if sols else 0.0,
                        "failure_messages": msgs[:20],
                    }
                    rows.append(row)
                    if progress:
                        print(f"  K={k:<3} clients={n:<3} p50={row['p50_ms']:.1f} ms p99={row['p99_ms']:.1f} ms {row['requests_per_second']:.1f} req/s failures={failures}", file=sys.stderr, flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        sys.exit(_client_main(sys.argv[2:]))
    raise SystemExit("usage: cemssl-ik bench service (this module's 'client' mode is internal)")
