"""The whole loop with no hardware: the built-in MuJoCo UR3, the IK service and the learner.

    ros2 launch cemssl_ik sim_demo.launch.py [link_length_change:=0.05] [model:=ur3_fkloss_position]
        [output_dir:=...] [use_sim_time:=false] [log_level:=info]

* ``sim_robot_node``: a UR3 whose every link is ``link_length_change`` metres longer than its URDF
  says, behind the UR driver's interface (``scaled_joint_trajectory_controller/joint_trajectory``,
  ``/joint_states``, ``/tcp_pose_broadcaster/pose``, ``/clock``);
* ``ik_service_node`` with ``model`` (a position model): exact for the nominal URDF, centimetres off
  on this arm until it learns;
* ``learner_node`` with ``forward_model: robot``: it moves the simulated arm over those topics.

Send it a goal, and the service reloads the adapted model for the identified arm:
``ros2 action send_goal --feedback /cemssl_learner/learn cemssl_ik_interfaces/action/Learn "{strategy: calibrate, max_moves: 60}"``
"""

import os

from ament_index_python.packages import get_package_share_directory
from cemssl_ik.ros.launch_args import check_log_level, node_parameters
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node


def _nodes(context):
    from cemssl_ik.kinematics import load_robot
    from cemssl_ik.kinematics.perturbation import uniform_link_change

    cfg = context.launch_configurations
    share = get_package_share_directory("cemssl_ik")
    config = os.path.join(share, "config")
    args = ["--ros-args", "--log-level", check_log_level(cfg["log_level"])]
    change = float(cfg["link_length_change"])
    controller = "scaled_joint_trajectory_controller"
    sim = Node(
        package="cemssl_ik",
        executable="sim_robot_node",
        name="sim_robot",
        parameters=node_parameters(os.path.join(config, "sim_robot.yaml"), cfg["use_sim_time"], {"controller": controller, "link_length_changes": list(uniform_link_change(load_robot("ur3"), change))}),
        arguments=args,
        output="screen",
    )
    service = Node(
        package="cemssl_ik",
        executable="ik_service_node",
        name="cemssl_ik",
        parameters=node_parameters(
            os.path.join(config, "ik_service.yaml"), cfg["use_sim_time"], {"model": cfg["model"], "robot_description_topic": "/cemssl_learner/robot_description"}
        ),
        arguments=args,
        output="screen",
    )
    learner = Node(
        package="cemssl_ik",
        executable="learner_node",
        name="cemssl_learner",
        parameters=node_parameters(
            os.path.join(config, "learner.yaml"), cfg["use_sim_time"], {"forward_model": "robot", "controller": controller, "model": cfg["model"], "output_dir": cfg["output_dir"]}
        ),
        arguments=args,
        output="screen",
    )
    return [sim, service, learner]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("link_length_change", default_value="0.05", description="metres added to every link of the simulated arm"),
            DeclareLaunchArgument("model", default_value="ur3_fkloss_position", description="model the service serves and the learner adapts (a position model without branch classes)"),
            DeclareLaunchArgument("output_dir", default_value="", description="the learner's samples and checkpoints; empty = $ROS_HOME/cemssl_learner"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="our nodes on the simulation's /clock"),
            DeclareLaunchArgument("log_level", default_value="info", description="log level: debug, info, warn, error or fatal"),
            OpaqueFunction(function=_nodes),
        ]
    )
