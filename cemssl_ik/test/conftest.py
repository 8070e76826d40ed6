"""Shared fixtures: seeding, a per-run ROS domain on loopback, helpers to run nodes in processes."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_ROOT.parent


def small(method: str, chain, **kw):
    """A small ModelConfig of ``method`` for ``chain``: fast to train in the learning tests."""
    from cemssl_ik.models import ModelConfig

    defaults = dict(method=method, latent_dim=2, members=2, hidden=(128, 128), output="biternion")
    if method == "cinn":
        defaults.update(latent_dim=chain.dof, members=1, output="sigmoid", coupling_blocks=4, coupling_hidden=64)
    elif method in ("cvae", "cgan"):
        defaults.update(members=1)
    defaults.update(kw)
    return ModelConfig(**defaults)


def pytest_configure(config: pytest.Config) -> None:
    # DDS must never leave loopback.  The nodes the tests start run in ROS_DOMAIN_ID as set by the
    # user (tools/env.sh sets one per shell, so parallel runs do not see each other's nodes);
    # where it is unset, a random domain keeps the run apart from others.
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    os.environ["ROS_DOMAIN_ID"] = test_domain_id(os.environ)


def test_domain_id(env) -> str:
    """The ROS_DOMAIN_ID of a test run: the user's, if set (0..232), else a random one in 1..101."""
    value = env.get("ROS_DOMAIN_ID", "").strip()
    if value:
        if not value.isdigit() or int(value) > 232:
            raise pytest.UsageError(f"ROS_DOMAIN_ID={value!r} is not a domain id (0..232)")
        return value
    return str(random.SystemRandom().randint(1, 101))


test_domain_id.__test__ = False  # a helper, not a test


@pytest.fixture(autouse=True)
def _seed() -> None:
    import torch

    torch.manual_seed(0)
    random.seed(0)


def ros_available() -> bool:
    try:
        import rclpy  # noqa: F401

        from cemssl_ik_interfaces.srv import GetIKSolutions  # noqa: F401
    except ImportError:
        return False
    return True


requires_ros = pytest.mark.skipif(not ros_available(), reason="rclpy or cemssl_ik_interfaces not importable (run `make setup` and `source tools/env.sh`)")


class NodeProcess:
    """A node started with ``python -m module`` in its own process; stopped (SIGINT, then kill) on close."""

    def __init__(self, module: str, *ros_args: str) -> None:
        cmd = [sys.executable, "-m", module]
        if ros_args:
            cmd += ["--ros-args", *ros_args]
        self.proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def close(self) -> str:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        out = self.proc.stdout.read() if self.proc.stdout else ""
        return out


@pytest.fixture
def start_node():
    started: list[NodeProcess] = []

    def _start(module: str, *ros_args: str) -> NodeProcess:
        node = NodeProcess(module, *ros_args)
        started.append(node)
        return node

    yield _start
    for node in started:
        node.close()
