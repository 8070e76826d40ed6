"""Learning: forward-model protocol, CEMSSL, supervised pretraining, unsupervised FK-loss training."""

from .calibration import CalibrationConfig, CalibrationResult, ResidualStats, calibrate_chain, calibrated_urdf, calibration_parameter_names, calibration_trial
from .cemssl import CEMSSLConfig, CEMSSLTrainer, IterationStats
from .forward_model import AnalyticForwardModel, ForwardModel, ForwardResult
from .targets import TargetBatch, sample_targets
from .unsupervised import FKLoss, SphereObstacle, UnsupervisedConfig, UnsupervisedTrainer

__all__ = [
    "CalibrationConfig",
    "CalibrationResult",
    "ResidualStats",
    "calibrate_chain",
    "calibrated_urdf",
    "calibration_parameter_names",
    "calibration_trial",
    "CEMSSLConfig",
    "CEMSSLTrainer",
    "IterationStats",
    "AnalyticForwardModel",
    "ForwardModel",
    "ForwardResult",
    "TargetBatch",
    "sample_targets",
    "FKLoss",
    "SphereObstacle",
    "UnsupervisedConfig",
    "UnsupervisedTrainer",
]
