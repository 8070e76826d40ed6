"""A UR3 in Gazebo (ur_simulation_gz) with the learned IK service on simulated time.

    ros2 launch cemssl_ik ur3_gazebo.launch.py [gazebo_gui:=true] [launch_rviz:=false] [model:=...]

Starts ``ur_simulation_gz``'s ``ur_sim_control.launch.py`` (``ur_type:=ur3``; its controller is
``joint_trajectory_controller``) and ``ik_service_node`` with ``use_sim_time:=true``; the node
takes the simulated arm's URDF from ``/robot_description``; ``learner_node`` moves the Gazebo arm
through the same controller (``forward_model: robot``, tool pose by FK of the measured joints: the
Gazebo arm is its URDF, so this exercises the loop rather than teaching it anything new).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    gazebo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("ur_simulation_gz"), "launch", "ur_sim_control.launch.py"])),
        launch_arguments={
            "ur_type": "ur3",
            "launch_rviz": LaunchConfiguration("launch_rviz"),
            "gazebo_gui": LaunchConfiguration("gazebo_gui"),
            "initial_joint_controller": LaunchConfiguration("controller"),
        }.items(),
    )
    ik_service = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("cemssl_ik"), "launch", "ik_service.launch.py"])),
        launch_arguments={"model": LaunchConfiguration("model"), "use_sim_time": "true", "log_level": LaunchConfiguration("log_level")}.items(),
    )
    learner = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("cemssl_ik"), "launch", "learner.launch.py"])),
        launch_arguments={
            "forward_model": "robot",
            "controller": LaunchConfiguration("controller"),
            "pose_source": "fk",
            "use_sim_time": "true",
            "log_level": LaunchConfiguration("log_level"),
        }.items(),
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument("gazebo_gui", default_value="true", description="show Gazebo's window"),
            DeclareLaunchArgument("launch_rviz", default_value="false", description="start RViz"),
            DeclareLaunchArgument("controller", default_value="joint_trajectory_controller", description="joint trajectory controller started in Gazebo"),
            DeclareLaunchArgument("model", default_value="", description="IK model (shipped name or checkpoint path); empty = config/ik_service.yaml's"),
            DeclareLaunchArgument("log_level", default_value="info", description="log level of our nodes: debug, info, warn, error or fatal"),
            gazebo,
            ik_service,
            learner,
        ]
    )
