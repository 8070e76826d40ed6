"""MoveIt 2 (ur_moveit_config, UR3) with the learned IK service as its kinematics solver.

    ros2 launch cemssl_ik moveit.launch.py [launch_rviz:=true] [reach:=true] [demo_obstacle:=true]
        [target:='[0.25, 0.15, 0.25, 1.0, 0.0, 0.0, 0.0]'] [execute:=false] [use_sim_time:=false]

Start the arm first (``ur3_robot.launch.py`` with ``mock_hardware:=true`` for a dry run, or
``ur3_gazebo.launch.py`` with ``use_sim_time:=true`` here); like ur_moveit_config's own launch
file, move_group waits for the ``robot_description`` the driver publishes.

* move_group runs with ur_moveit_config's configuration, except kinematics: config/
  moveit_kinematics.yaml makes ``srv_kinematics_plugin`` call ``/cemssl_ik/get_ik``
  (GetPositionIK), answered with the learned + refined solution nearest MoveIt's seed.
* ``moveit_reach_node`` (``reach:=true``) asks ``/cemssl_ik/get_ik_solutions`` for many solutions
  of ``target`` and plans to them in order of joint distance, skipping those the obstacle blocks.

MoveIt's srv plugin waits on the service without a timeout, and move_group's ``/compute_ik`` can
deadlock through it (moveit2 issue 3633): for multi-solution reaching, call our services directly,
as moveit_reach_node does, rather than ``/compute_ik``.  Written for Jazzy (moveit_py, the
``wait_for_robot_description`` gate of ur_robot_driver).
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from cemssl_ik.ros.launch_args import check_log_level, parse_bool
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _moveit(context):
    from moveit_configs_utils import MoveItConfigsBuilder

    cfg = context.launch_configurations
    use_sim_time = parse_bool("use_sim_time", cfg["use_sim_time"])
    kinematics = Path(get_package_share_directory("cemssl_ik")) / "config" / "moveit_kinematics.yaml"
    moveit_config = (
        MoveItConfigsBuilder(robot_name="ur", package_name="ur_moveit_config")
        .robot_description_semantic(Path("srdf") / "ur.srdf.xacro", {"name": "ur3"})
        .robot_description_kinematics(file_path=str(kinematics))
        .to_moveit_configs()
    )
    log_args = ["--ros-args", "--log-level", check_log_level(cfg["log_level"])]
    wait = Node(package="ur_robot_driver", executable="wait_for_robot_description", output="screen")
    move_group = Node(
        package="moveit_ros_move_group",
        executable="move_group",
        output="screen",
        parameters=[moveit_config.to_dict(), {"use_sim_time": use_sim_time}],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2_moveit",
        output="log",
        condition=IfCondition(cfg["launch_rviz"]),
        arguments=["-d", str(Path(get_package_share_directory("ur_moveit_config")) / "config" / "moveit.rviz")],
        parameters=[moveit_config.robot_description_semantic, moveit_config.robot_description_kinematics, moveit_config.planning_pipelines, moveit_config.joint_limits],
    )
    reach = Node(
        package="cemssl_ik",
        executable="moveit_reach_node",
        output="screen",
        condition=IfCondition(cfg["reach"]),
        parameters=[
            moveit_config.to_dict(),
            {
                "use_sim_time": use_sim_time,
                "planning_group": "ur_manipulator",
                "execute": parse_bool("execute", cfg["execute"]),
                "demo_obstacle": parse_bool("demo_obstacle", cfg["demo_obstacle"]),
                "target": [float(v) for v in cfg["target"].strip("[] ").split(",")],
            },
        ],
        arguments=log_args,
    )
    return [wait, RegisterEventHandler(OnProcessExit(target_action=wait, on_exit=[move_group, rviz, reach]))]


def generate_launch_description() -> LaunchDescription:
    ik_service = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("cemssl_ik"), "launch", "ik_service.launch.py"])),
        launch_arguments={
            "model": LaunchConfiguration("model"),
            "use_sim_time": LaunchConfiguration("use_sim_time"),
            "log_level": LaunchConfiguration("log_level"),
        }.items(),
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument("launch_rviz", default_value="true", description="start RViz with the MoveIt plugin"),
            DeclareLaunchArgument("reach", default_value="true", description="start moveit_reach_node"),
            DeclareLaunchArgument("target", default_value="[0.25, 0.15, 0.25, 1.0, 0.0, 0.0, 0.0]", description="pose moveit_reach_node reaches at start-up: x, y, z, qx, qy, qz, qw in base_link ('[0.0]' = none)"),
            DeclareLaunchArgument("demo_obstacle", default_value="true", description="add the demo box that blocks some of the target's solutions"),
            DeclareLaunchArgument("execute", default_value="false", description="execute the plan found (false: plan only)"),
            DeclareLaunchArgument("model", default_value="", description="IK model (shipped name or checkpoint path); empty = config/ik_service.yaml's"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="true with Gazebo"),
            DeclareLaunchArgument("log_level", default_value="info", description="log level of our nodes: debug, info, warn, error or fatal"),
            ik_service,
            OpaqueFunction(function=_moveit),
        ]
    )
