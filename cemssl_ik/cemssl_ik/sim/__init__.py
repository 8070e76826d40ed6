"""The package's simulated robot: a MuJoCo UR3 with perturbable true kinematics (no rclpy here)."""

from ..kinematics.perturbation import KinematicPerturbation, perturbed_chain, uniform_link_change
from .mujoco_ur3 import SimConfig, SimMeasurement, SimUR3, build_mjcf

__all__ = ["KinematicPerturbation", "SimConfig", "SimMeasurement", "SimUR3", "build_mjcf", "perturbed_chain", "uniform_link_change"]
