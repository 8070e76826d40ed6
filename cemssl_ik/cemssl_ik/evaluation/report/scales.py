"""Sizes of a report run: ``full`` (the published RESULTS.md) and ``quick`` (a smoke run)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReportScale", "SCALES"]


@dataclass(frozen=True)
class ReportScale:
    """Sizes of one report run (``full`` takes about 90 minutes on 2 cores, ``quick`` a few minutes)."""

    name: str
    ur3_targets: int  # held-out targets for the shipped models' precision
    diversity_targets: int  # targets for class coverage / MMD
    diversity_samples: int  # model samples per target for coverage / MMD
    reference_orientations: int  # random orientations per position for the UR3 reference posterior
    train_seconds: float  # budget per model trained by the report (emssl, planar)
    artificial_train_seconds: float  # budget per artificial-chain model
    trained_eval_targets: int  # held-out targets for the models trained here
    hidden: tuple[int, ...]  # widths of the models trained here
    members: int  # CEMSSL ensemble size of the models trained here
    planar_dofs: tuple[int, ...]
    planar_targets: int
    planar_reference: int  # accepted rejection samples per planar target
    artificial_dofs: tuple[int, ...]
    pose_targets: int
    ikpy_targets: int
    speed_batches: tuple[int, ...]
    speed_seconds: float  # time each speed cell at least this long
    sampling_samples: int  # Table III analog sample count
    cross_section: int  # grid points per axis of the workspace cross-section
    hard_targets: int  # targets per near-singular UR3 set (evaluation/hard_targets.py)
    finetune_seconds: float = 300.0  # budget per fine-tuning run of the finetune_terms section
    adaptation_changes: tuple[float, ...] = (1.0, 3.0, 5.0)  # cm on every link (adaptation section)
    adaptation_noise: tuple[float, ...] = (0.0, 0.05)  # measurement noise std, mm
    adaptation_identify_moves: int = 100  # identification moves of calibrate (twice as many with noise)
    adaptation_robot_moves: int = 5000  # whole budget of the robot strategy
    adaptation_minutes: float = 15.0  # training minutes per run


SCALES = {
    "full": ReportScale(
        name="full",
        ur3_targets=2000,
        diversity_targets=100,
        diversity_samples=128,
        reference_orientations=256,
        train_seconds=75.0,
        artificial_train_seconds=40.0,
        trained_eval_targets=2000,
        hidden=(512, 256, 128),
        members=4,
        planar_dofs=(4, 6, 8, 10),
        planar_targets=20,
        planar_reference=300,
        artificial_dofs=(4, 8, 12, 16, 20),
        pose_targets=1000,
        ikpy_targets=100,
        speed_batches=(1, 64, 4096),
        speed_seconds=3.0,
        sampling_samples=2048,
        cross_section=60,
        hard_targets=300,
    ),
    "quick": ReportScale(
        name="quick",
        ur3_targets=200,
        diversity_targets=8,
        diversity_samples=32,
        reference_orientations=32,
        train_seconds=3.0,
        artificial_train_seconds=2.0,
        trained_eval_targets=200,
        hidden=(64, 64),
        members=2,
        planar_dofs=(4,),
        planar_targets=3,
        planar_reference=50,
        artificial_dofs=(4,),
        pose_targets=40,
        ikpy_targets=3,
        speed_batches=(1, 64),
        speed_seconds=0.3,
        sampling_samples=128,
        cross_section=16,
        hard_targets=10,
        finetune_seconds=3.0,
        adaptation_changes=(5.0,),
        adaptation_noise=(0.0,),
        adaptation_identify_moves=20,
        adaptation_robot_moves=300,
        adaptation_minutes=0.05,
    ),
}
