"""Launch the learned multi-solution IK service (``ik_service_node``).

    ros2 launch cemssl_ik ik_service.launch.py [model:=ur3_cemssl_pose] [params_file:=...]

Offers ~/get_ik_solutions, ~/reload and, with moveit_msgs installed, ~/get_ik (GetPositionIK) for
MoveIt's srv_kinematics_plugin (set its kinematics_solver_service_name to /cemssl_ik/get_ik).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("cemssl_ik"), "config", "ik_service.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=default_params, description="YAML parameters for ik_service_node"),
            DeclareLaunchArgument("model", default_value="ur3_cemssl_pose", description="shipped model name or checkpoint path"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
            Node(
                package="cemssl_ik",
                executable="ik_service_node",
                name="cemssl_ik",
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("params_file"), {"model": LaunchConfiguration("model")}],
                output="screen",
            ),
        ]
    )
