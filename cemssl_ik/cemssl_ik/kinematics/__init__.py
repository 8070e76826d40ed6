"""Kinematics: URDF chains with batched differentiable FK and Jacobians, UR analytic IK, test robots."""

from .chain import FKJacobianResult, FKResult, JointSpec, KinematicChain
from .limits import nearest_periodic_copy, wrap_to_pi
from .robots import RobotChain, artificial_chain, artificial_transform, generated_robot, load_robot, planar_arm, planar_fk_closed_form, robot_chain, shipped_urdf
from .transforms import matrix_to_quaternion, matrix_to_rot6d, quaternion_to_matrix, rot6d_to_matrix, rotation_angle
from .ur_analytic import UR_DH, URAnalyticIK, URDHParameters, URIKResult, ur_branch_ids
from .urdf import URDFError, chain_from_urdf, fixed_transform, read_urdf_text

__all__ = [
    "FKJacobianResult",
    "FKResult",
    "JointSpec",
    "KinematicChain",
    "URDFError",
    "artificial_chain",
    "artificial_transform",
    "load_robot",
    "RobotChain",
    "generated_robot",
    "robot_chain",
    "shipped_urdf",
    "chain_from_urdf",
    "fixed_transform",
    "read_urdf_text",
    "planar_arm",
    "planar_fk_closed_form",
    "nearest_periodic_copy",
    "wrap_to_pi",
    "matrix_to_quaternion",
    "matrix_to_rot6d",
    "quaternion_to_matrix",
    "rot6d_to_matrix",
    "rotation_angle",
    "UR_DH",
    "URAnalyticIK",
    "URDHParameters",
    "URIKResult",
    "ur_branch_ids",
]
