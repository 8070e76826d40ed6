"""Kinematics: URDF chains with batched differentiable FK and Jacobians, UR analytic IK, test robots."""

from .chain import FKJacobianResult, FKResult, JointSpec, KinematicChain, URDFError
from .limits import nearest_periodic_copy, wrap_to_pi
from .robots import artificial_chain, artificial_transform, find_package_file, load_robot, planar_arm, planar_fk_closed_form
from .transforms import matrix_to_quaternion, matrix_to_rot6d, quaternion_to_matrix, rot6d_to_matrix, rotation_angle
from .ur_analytic import UR_DH, URAnalyticIK, URDHParameters, URIKResult, ur_branch_ids

__all__ = [
    "FKJacobianResult",
    "FKResult",
    "JointSpec",
    "KinematicChain",
    "URDFError",
    "artificial_chain",
    "artificial_transform",
    "find_package_file",
    "load_robot",
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
