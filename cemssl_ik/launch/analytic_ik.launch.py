"""Launch the closed-form UR3 IK service (``analytic_ik_node``) with its parameter file.

    ros2 launch cemssl_ik analytic_ik.launch.py [params_file:=...] [namespace:=...]
        [use_sim_time:=false] [log_level:=info]
"""

import os

from ament_index_python.packages import get_package_share_directory
from cemssl_ik.ros.launch_args import check_log_level, node_parameters
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node


def _nodes(context):
    cfg = context.launch_configurations
    return [
        Node(
            package="cemssl_ik",
            executable="analytic_ik_node",
            name="analytic_ik",
            namespace=cfg["namespace"],
            parameters=node_parameters(cfg["params_file"], cfg["use_sim_time"]),
            arguments=["--ros-args", "--log-level", check_log_level(cfg["log_level"])],
            output="screen",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("cemssl_ik")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "analytic_ik.yaml"), description="YAML parameters of analytic_ik_node"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock instead of wall time"),
            DeclareLaunchArgument("log_level", default_value="info", description="log level: debug, info, warn, error or fatal"),
            OpaqueFunction(function=_nodes),
        ]
    )
