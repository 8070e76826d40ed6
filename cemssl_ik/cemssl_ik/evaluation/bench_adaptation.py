"""Adaptation experiment (the EMSSL paper's Table IV analog): the learner's strategies on a UR3 whose links
are longer than its URDF says, simulated with MuJoCo.

For each (link change, strategy, measurement noise) the shipped position model, trained for the
nominal arm, is adapted by :class:`~cemssl_ik.learning.adaptation.Adapter` against the in-process
simulated arm, and measured on the arm's *true* kinematics (the simulator's chain), never on a
model's own chain: the model alone at held-out targets, and refined IK answers (the solver through
the identified chain, as the IK service answers after its reload).
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..kinematics import KinematicChain, chain_from_urdf, load_robot
from ..kinematics.perturbation import uniform_link_change
from ..learning.adaptation import AdaptationConfig, Adapter, LearnGoal, LoggedForwardModel, chain_from_calibration_file, identify_from_samples
from ..learning.sample_log import SampleLog
from ..learning.targets import sample_targets
from ..models import load_checkpoint
from ..safety import SafetyChecker, SafetyConfig
from ..seeds import ADAPTATION_TARGETS_SEED_OFFSET
from ..sim import KinematicPerturbation, SimConfig, SimUR3
from ..sim.sim_forward_model import SimForwardModel
from ..solver import refined_answers

__all__ = ["AdaptationRecord", "run_adaptation", "true_errors"]


@dataclass(frozen=True)
class AdaptationRecord:
    """One row of docs/results/adaptation.json (errors: mean position error on the true arm, mm)."""

    link_change_cm: float
    strategy: str
    noise_mm: float
    error_before_mm: float
    error_after_mm: float
    refined_error_mm: float
    robot_moves: int
    iterations: int
    minutes: float
    model: str
    seed: int
    #: the same errors over targets the safety layer lets the arm reach (its floor, workspace box and
    #: limits): all the robot strategy can learn from; NaN in records from before it was measured
    error_before_safe_mm: float = math.nan
    error_after_safe_mm: float = math.nan

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def true_errors(model, true_arm: KinematicChain, solve_chain: KinematicChain | None, targets: int = 500, seed: int = 0, feasible=None) -> tuple[float, float]:
    """(model alone, refined through ``solve_chain``) mean position errors in mm on the true arm, over
    targets at uniform joints, or only at joints ``feasible(q)`` accepts."""
    from ..solver import IKSolver, SolverOptions

    t = sample_targets(true_arm, targets if feasible is None else 8 * targets, torch.Generator().manual_seed(seed + ADAPTATION_TARGETS_SEED_OFFSET))
    if feasible is not None:
        keep = torch.tensor([bool(feasible(q)) for q in t.q.numpy()])
        t = t.index(torch.nonzero(keep)[:targets, 0])
    model.eval()
    q = model.sample(t.position, t.rotation if model.config.target == "pose" else None, 1, generator=torch.Generator().manual_seed(seed)).q[:, 0].double().cpu()
    alone = float((true_arm.forward(q).position - t.position).norm(dim=-1).mean()) * 1e3
    refined = math.nan
    if solve_chain is not None:
        res = IKSolver(model, solve_chain).solve(t.position, None, options=SolverOptions(num_solutions=1))
        ok = torch.as_tensor(res.valid[:, 0])
        if ok.any():
            qr = torch.as_tensor(res.solutions[:, 0])[ok]
            refined = float((true_arm.forward(qr).position - t.position[ok]).norm(dim=-1).mean()) * 1e3
    return alone, refined


def run_adaptation(
    change_cm: float,
    strategy: str,
    noise_mm: float,
    moves: int,
    minutes: float,
    model_name: str = "ur3_fkloss_position",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> AdaptationRecord:
    """One adaptation run (see the module docstring)."""
    say = progress or (lambda s: None)
    nominal = load_robot("ur3")
    model, _ = load_checkpoint(model_name, nominal)
    pert = KinematicPerturbation(link_length_changes=uniform_link_change(nominal, change_cm / 100))
    sim = SimUR3(SimConfig(perturbation=pert, tool_position_noise_std=noise_mm / 1000, seed=seed, settle_position_tolerance=1e-7, settle_velocity_tolerance=1e-5))
    checker = SafetyChecker(nominal, SafetyConfig())

    def check(a, b):
        v = checker.check(a, b)
        return v.ok, list(v.reasons)

    def safe(q) -> bool:
        return checker.check(q, q).ok

    before, _ = true_errors(model, sim.true_chain, None, seed=seed)
    before_safe, _ = true_errors(model, sim.true_chain, None, seed=seed, feasible=safe)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        log = SampleLog.open(Path(tmp) / "samples.jsonl", dof=nominal.dof)
        fm = LoggedForwardModel(SimForwardModel(sim, check, lambda a, b: checker.time_trajectory(a, b).duration, max_step=checker.config.max_joint_step), log)
        adapter = Adapter(
            model, nominal, fm, log, tmp, AdaptationConfig(eval_targets=10, train_minutes=minutes, seed=seed),
            identify=identify_from_samples, read_calibration=chain_from_calibration_file,
            progress=lambda p: say(f"[{p.phase}] {p.message}") if p.message and not p.message.startswith("step") else None,
            feasible=safe, refine=refined_answers,
        )  # fmt: skip
        outcome = adapter.run(LearnGoal(strategy, max_moves=moves, max_minutes=minutes))
        if not outcome.success:
            raise RuntimeError(outcome.message)
        adapted = adapter.model
        solve_chain = chain_from_urdf(Path(outcome.urdf).read_text(), "base_link", "tool0")
        log.close()
    after, refined = true_errors(adapted, sim.true_chain, solve_chain, seed=seed)
    after_safe, _ = true_errors(adapted, sim.true_chain, None, seed=seed, feasible=safe)
    iterations = int(outcome.identification.get("iterations", 0)) if outcome.identification else outcome.iterations
    return AdaptationRecord(change_cm, strategy, noise_mm, before, after, refined, fm.moves, iterations, (time.monotonic() - start) / 60, model_name, seed, before_safe, after_safe)
