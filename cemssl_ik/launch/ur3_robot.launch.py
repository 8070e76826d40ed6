"""The real UR3 (or the driver's mock hardware) through ur_robot_driver, with the learned IK service.

    ros2 launch cemssl_ik ur3_robot.launch.py robot_ip:=192.168.1.102
        [kinematics_params_file:=my_robot_calibration.yaml] [mock_hardware:=false]
        [model:=...] [launch_rviz:=false] [dry_run:=true] [safety_file:=...] [use_sim_time:=false] [log_level:=info]

Starts ur_robot_driver's ``ur_control.launch.py`` (``ur_type:=ur3``; the mock-hardware flag is
``use_fake_hardware`` on Humble and ``use_mock_hardware`` on Jazzy and later, chosen from
``ROS_DISTRO``) and ``ik_service_node``, which reloads its model against the ``/robot_description``
the driver publishes: with ``kinematics_params_file`` (the arm's factory calibration, extracted by
``ur_calibration``) its refined answers are exact for the calibrated arm.  Nothing here commands
the arm by itself: ``learner_node`` (``forward_model: robot`` on the driver's controller, tool pose
from ``/tcp_pose_broadcaster/pose``) waits for a goal, and with ``dry_run:=true`` (the default) even
a goal only checks and logs its moves.  Set ``dry_run:=false`` when the dry run's moves look right.
"""

import os

from cemssl_ik.ros.launch_args import mock_hardware_argument, parse_bool
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def _driver(context):
    cfg = context.launch_configurations
    args = {
        "ur_type": "ur3",
        "robot_ip": cfg["robot_ip"],
        "launch_rviz": cfg["launch_rviz"],
        "initial_joint_controller": cfg["controller"],
        mock_hardware_argument(os.environ.get("ROS_DISTRO", "")): "true" if parse_bool("mock_hardware", cfg["mock_hardware"]) else "false",
    }
    if cfg["kinematics_params_file"]:
        args["kinematics_params_file"] = cfg["kinematics_params_file"]
    source = PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("ur_robot_driver"), "launch", "ur_control.launch.py"]))
    return [IncludeLaunchDescription(source, launch_arguments=args.items())]


def generate_launch_description() -> LaunchDescription:
    ik_service = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("cemssl_ik"), "launch", "ik_service.launch.py"])),
        launch_arguments={
            "model": LaunchConfiguration("model"),
            "use_sim_time": LaunchConfiguration("use_sim_time"),
            "log_level": LaunchConfiguration("log_level"),
        }.items(),
    )
    learner = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("cemssl_ik"), "launch", "learner.launch.py"])),
        launch_arguments={
            "forward_model": "robot",
            "controller": LaunchConfiguration("controller"),
            "pose_source": LaunchConfiguration("pose_source"),
            "pose_topic": "/tcp_pose_broadcaster/pose",
            "dry_run": LaunchConfiguration("dry_run"),
            "safety_file": LaunchConfiguration("safety_file"),
            "use_sim_time": LaunchConfiguration("use_sim_time"),
            "log_level": LaunchConfiguration("log_level"),
        }.items(),
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument("robot_ip", description="IP address of the UR3 controller (any address with mock_hardware:=true)"),
            DeclareLaunchArgument("kinematics_params_file", default_value="", description="the arm's calibration YAML from ur_calibration; empty = ur_description's nominal UR3"),
            DeclareLaunchArgument("mock_hardware", default_value="false", description="use ros2_control mock hardware instead of the arm"),
            DeclareLaunchArgument("controller", default_value="scaled_joint_trajectory_controller", description="joint trajectory controller the driver starts"),
            DeclareLaunchArgument("launch_rviz", default_value="false", description="start RViz with the driver"),
            DeclareLaunchArgument("model", default_value="", description="IK model (shipped name or checkpoint path); empty = config/ik_service.yaml's"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock instead of wall time"),
            DeclareLaunchArgument("log_level", default_value="info", description="log level of our nodes: debug, info, warn, error or fatal"),
            DeclareLaunchArgument("dry_run", default_value="true", description="the learner checks and logs every move and sends none (false: it moves the arm)"),
            DeclareLaunchArgument("safety_file", default_value="", description="the learner's safety settings (YAML of cemssl_ik.safety.SafetyConfig); empty = conservative defaults"),
            DeclareLaunchArgument("pose_source", default_value="topic", description="tool pose: topic (/tcp_pose_broadcaster/pose, real arm) or fk (mock hardware publishes no tool pose)"),
            OpaqueFunction(function=_driver),
            ik_service,
            learner,
        ]
    )
