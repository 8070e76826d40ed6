"""Launch the learned multi-solution IK service (``ik_service_node``).

    ros2 launch cemssl_ik ik_service.launch.py [model:=ur3_regression_pose] [params_file:=...]
        [namespace:=...] [use_sim_time:=false] [log_level:=info]

Offers ~/get_ik_solutions, ~/reload and, with moveit_msgs installed, ~/get_ik (GetPositionIK) for
MoveIt's srv_kinematics_plugin (kinematics_solver_service_name: /cemssl_ik/get_ik; see
moveit.launch.py).  ``model:=`` given on the command line wins over the params file's ``model:``;
left empty, the params file decides.
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
            executable="ik_service_node",
            name=cfg["node_name"],
            namespace=cfg["namespace"],
            parameters=node_parameters(cfg["params_file"], cfg["use_sim_time"], {"model": cfg["model"]}),
            arguments=["--ros-args", "--log-level", check_log_level(cfg["log_level"])],
            output="screen",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("cemssl_ik")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "ik_service.yaml"), description="YAML parameters of ik_service_node (keys /** apply under any namespace)"),
            DeclareLaunchArgument("model", default_value="", description="shipped model name or checkpoint path; empty = the params file's model"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node (services become /NS/cemssl_ik/...)"),
            DeclareLaunchArgument("node_name", default_value="cemssl_ik", description="name of the node"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (Gazebo, the built-in simulation) instead of wall time"),
            DeclareLaunchArgument("log_level", default_value="info", description="log level: debug, info, warn, error or fatal"),
            OpaqueFunction(function=_nodes),
        ]
    )
