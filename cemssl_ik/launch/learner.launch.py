"""Launch ``learner_node``: re-learns the IK model from the robot (action ``~/learn``).

    ros2 launch cemssl_ik learner.launch.py [forward_model:=sim|robot|analytic] [setup:=real|mock|gazebo|sim]
        [controller:=joint_trajectory_controller] [pose_topic:=/tcp_pose_broadcaster/pose]
        [safety_file:=my_safety.yaml] [dry_run:=false] [link_length_change:=0.0]
        [params_file:=...] [namespace:=...] [use_sim_time:=false] [log_level:=info]

Then send a goal, e.g.
``ros2 action send_goal --feedback /cemssl_learner/learn cemssl_ik_interfaces/action/Learn "{strategy: calibrate, max_moves: 60}"``.
Arguments left empty keep the params file's values.
"""

import os

from ament_index_python.packages import get_package_share_directory
from cemssl_ik.ros.launch_args import check_log_level, node_parameters, parse_bool, robot_interface
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node


def _nodes(context):
    cfg = context.launch_configurations
    overrides = {}
    if cfg["setup"]:  # the kind of arm: controller and pose source from config/controllers.yaml
        overrides.update(robot_interface(cfg["setup"], os.path.join(get_package_share_directory("cemssl_ik"), "config", "controllers.yaml")))
    overrides.update({name: cfg[name] for name in ("forward_model", "controller", "pose_source", "pose_topic", "safety_file", "model", "output_dir") if cfg[name]})
    if cfg["dry_run"]:
        overrides["dry_run"] = parse_bool("dry_run", cfg["dry_run"])
    if cfg["link_length_change"]:
        overrides["link_length_change"] = float(cfg["link_length_change"])
    return [
        Node(
            package="cemssl_ik",
            executable="learner_node",
            name="cemssl_learner",
            namespace=cfg["namespace"],
            parameters=node_parameters(cfg["params_file"], cfg["use_sim_time"], overrides),
            arguments=["--ros-args", "--log-level", check_log_level(cfg["log_level"])],
            output="screen",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("cemssl_ik")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "learner.yaml"), description="YAML parameters of learner_node"),
            DeclareLaunchArgument("setup", default_value="", description="kind of arm: real, mock, gazebo or sim (config/controllers.yaml: controller and pose source); empty = the params file's"),
            DeclareLaunchArgument("forward_model", default_value="", description="the robot: sim (built-in MuJoCo UR3), robot (a ros2_control UR over ROS 2) or analytic; empty = the params file's (sim)"),
            DeclareLaunchArgument("controller", default_value="", description="joint trajectory controller of the robot (scaled_joint_trajectory_controller on a real UR); empty = the params file's"),
            DeclareLaunchArgument("pose_source", default_value="", description="tool pose from a PoseStamped topic ('topic') or FK of the measured joints ('fk', e.g. mock hardware, Gazebo); empty = the params file's (topic)"),
            DeclareLaunchArgument("pose_topic", default_value="", description="tool pose topic (geometry_msgs/PoseStamped); empty = the params file's (/tcp_pose_broadcaster/pose)"),
            DeclareLaunchArgument("safety_file", default_value="", description="safety layer settings YAML; empty = the params file's (conservative defaults)"),
            DeclareLaunchArgument("dry_run", default_value="", description="true: check and log moves, send none; empty = the params file's"),
            DeclareLaunchArgument("link_length_change", default_value="", description="sim / analytic: metres added to every link of the simulated arm; empty = the params file's"),
            DeclareLaunchArgument("model", default_value="", description="model to adapt; empty = the params file's (ur3_fkloss_position)"),
            DeclareLaunchArgument("output_dir", default_value="", description="samples and checkpoints directory; empty = the params file's ($ROS_HOME/cemssl_learner)"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (Gazebo, sim_robot_node) instead of wall time"),
            DeclareLaunchArgument("log_level", default_value="info", description="log level: debug, info, warn, error or fatal"),
            OpaqueFunction(function=_nodes),
        ]
    )
