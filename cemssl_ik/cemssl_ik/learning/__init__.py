"""Learning: forward-model protocol, CEMSSL, supervised pretraining, unsupervised FK-loss training."""

from .cemssl import CEMSSLConfig, CEMSSLTrainer, IterationStats
from .forward_model import AnalyticForwardModel, ForwardModel, ForwardResult
from .targets import TargetBatch, sample_targets
from .unsupervised import FKLoss, SphereObstacle, UnsupervisedConfig, UnsupervisedTrainer

__all__ = [
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
