"""Launch the closed-form UR3 IK service (``analytic_ik_node``) with its parameter file.

    ros2 launch cemssl_ik analytic_ik.launch.py [params_file:=...] [namespace:=...]
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("cemssl_ik"), "config", "analytic_ik.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=default_params, description="YAML parameters for analytic_ik_node"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
            Node(
                package="cemssl_ik",
                executable="analytic_ik_node",
                name="analytic_ik",
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("params_file")],
                output="screen",
            ),
        ]
    )
