"""Learning: forward-model protocol, CEMSSL, supervised pretraining, unsupervised FK-loss training, and
training recipes (an ordered list of phases of those trainers) with the pipeline that runs them."""

from .calibration import CalibrationConfig, CalibrationResult, ResidualStats, calibrate_chain, calibrated_urdf, calibration_parameter_names, calibration_trial
from .cemssl import CEMSSLConfig, CEMSSLTrainer, IterationStats
from .forward_model import AnalyticForwardModel, ForwardModel, ForwardResult
from .heldout import Evaluator, PrecisionReport, evaluate_precision, heldout_evaluator
from .pipeline import PhaseContext, PhaseOutcome, TrainOptions, TrainResult, register_phase_kind, train_model
from .recipe import Phase, Recipe, RecipeError, ResidualConfig, apply_overrides, load_recipe, recipe_names
from .supervised import SupervisedConfig, SupervisedTrainer
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
    "Evaluator",
    "PrecisionReport",
    "evaluate_precision",
    "heldout_evaluator",
    "PhaseContext",
    "PhaseOutcome",
    "TrainOptions",
    "TrainResult",
    "register_phase_kind",
    "train_model",
    "Phase",
    "Recipe",
    "RecipeError",
    "ResidualConfig",
    "apply_overrides",
    "load_recipe",
    "recipe_names",
    "SupervisedConfig",
    "SupervisedTrainer",
    "TargetBatch",
    "sample_targets",
    "FKLoss",
    "SphereObstacle",
    "UnsupervisedConfig",
    "UnsupervisedTrainer",
]
