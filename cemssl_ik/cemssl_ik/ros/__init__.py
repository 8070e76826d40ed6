"""ROS 2 nodes (thin, rclpy imported lazily inside each node module) and message conversions."""

from .conversions import RequestError, order_by_seed, parse_pose, parse_seed, validate_num_solutions

__all__ = ["RequestError", "order_by_seed", "parse_pose", "parse_seed", "validate_num_solutions"]
