"""cemssl_ik: multi-solution inverse kinematics learned with conditional generative models (CEMSSL)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
