"""Running a node as a console script: init, build, spin until Ctrl-C / shutdown, clean up."""

from __future__ import annotations

import sys
from typing import Callable

__all__ = ["run_node"]


def run_node(make_node: Callable[[], object], name: str, args=None, threads: int | Callable[[object], int] = 1) -> int:
    """Spin the node built by ``make_node`` (single- or multi-threaded); exit code 2 if it refuses to start.

    ``threads``: executor threads, or a function of the node giving them (e.g. from a parameter)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor

    rclpy.init(args=args)
    try:
        node = make_node()
    except (ValueError, OSError) as exc:  # bad parameters, a model or file that cannot be used
        print(f"{name}: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    if callable(threads):
        threads = threads(node)
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
