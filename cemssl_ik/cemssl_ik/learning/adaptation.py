"""Re-learning the inverse model for the arm as it really is: the learner's strategies, ROS-free.

:class:`Adapter` runs one goal of ``learner_node`` against a forward model that stands for the
robot (the arm over ROS, the built-in MuJoCo UR3, or a chain's FK):

* ``calibrate`` — measure the arm at ``identify_moves`` configurations (each sample on disk in the
  :class:`~.sample_log.SampleLog` before the next move), identify its kinematics from them,
  fine-tune the model with the FK loss through the identified chain, and measure the new model
  on fresh moves;
* ``calibration_file`` — the same with the chain read from a UR calibration YAML (zero moves for
  identification);
* ``robot`` — black-box CEMSSL (:mod:`.blackbox`) with the robot itself as the forward model (the
  EMSSL paper's approach 2): the model is asked for sampled targets, the robot is moved to its
  answers, and the model trains on every (measured pose -> measured joints) pair, until the move or
  time budget is spent; poses measured at random joints judge it and keep its best weights.  No
  chain is identified: the checkpoint stays tied to the nominal chain, and refined answers through
  that chain keep its error.

Every figure is measured on the forward model (the robot): the model alone is asked for the
measured pose of a random configuration, its answer is commanded and the pose reached is
measured again.  Nothing is judged on the nominal chain.  A restarted goal with the same output
directory reuses every recorded identification sample and continues from the last checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..kinematics import KinematicChain, chain_from_urdf
from ..models import load_checkpoint, save_checkpoint
from ..models.generators import IKGenerator
from .forward_model import ForwardModel, ForwardResult
from .goals import STRATEGIES, AdaptationConfig, Cancelled, Identify, LearnGoal, LearnOutcome, LearnProgress, ReadCalibration, Refine
from .sample_log import Sample, SampleLog
from .unsupervised import UnsupervisedConfig, UnsupervisedTrainer

__all__ = ["AdaptationConfig", "LearnGoal", "LearnProgress", "LearnOutcome", "Adapter", "Cancelled", "LoggedForwardModel", "STRATEGIES", "identify_from_samples", "chain_from_calibration_file"]

class LoggedForwardModel:
    """A forward model whose every sample goes to a :class:`SampleLog` (in-process robots)."""

    def __init__(self, inner: ForwardModel, log: SampleLog, kind: str = "identify") -> None:
        self.inner, self.log, self.kind = inner, log, kind
        self.moves = 0

    def evaluate(self, q: torch.Tensor) -> ForwardResult:
        from ..kinematics import matrix_to_quaternion

        res = self.inner.evaluate(q)
        quat = matrix_to_quaternion(res.rotation.double())
        for i in range(len(q)):
            self.log.append(
                Sample(q[i].double().numpy(), res.q[i].double().numpy(), res.position[i].double().numpy(), quat[i].numpy(), bool(res.valid[i]), self.kind, time.time())
            )
        self.moves += len(q)
        return res


class Adapter:
    """Runs learner goals (see the module docstring).

    Args:
        model: the inverse model to adapt (trained on the nominal chain); adapted in place.
        chain: the nominal chain (names, limits, the starting point of identification).
        robot: the forward model standing for the arm; it logs its own samples (the ROS robot)
            or is wrapped in :class:`LoggedForwardModel`. Its ``kind`` attribute, when it has
            one, is set to the purpose of each batch.
        log: the run's sample log (identification samples are reused from it on restart).
        output_dir: checkpoints, URDFs and the run record go here.
        config: budgets and training settings.
        identify: kinematic identification (``calibrate``).
        read_calibration: UR calibration YAML reader (``calibration_file``).
        progress: called with each :class:`LearnProgress`.
        cancelled: polled between moves and training steps; True ends the goal.
        feasible: q (dof,) -> True if the robot may go there (the safety layer's static checks:
            floor, workspace); random configurations are drawn among feasible ones.
        refine: the IK service's refined answer (:data:`Refine`), to measure refined answers on
            the robot too (without it their error is NaN).
    """

    def __init__(
        self,
        model: IKGenerator,
        chain: KinematicChain,
        robot: ForwardModel,
        log: SampleLog,
        output_dir: str | Path,
        config: AdaptationConfig,
        identify: Identify | None = None,
        read_calibration: ReadCalibration | None = None,
        progress: Callable[[LearnProgress], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        feasible: Callable[[np.ndarray], bool] | None = None,
        refine: Refine | None = None,
    ) -> None:
        self.model, self.chain, self.robot, self.log = model, chain, robot, log
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.config, self.identify, self.read_calibration = config, identify, read_calibration
        self._progress = progress or (lambda p: None)
        self._cancelled = cancelled or (lambda: False)
        self._feasible = feasible
        self._refine = refine
        self.moves = 0
        self._rng = np.random.default_rng(config.seed)

    # ------------------------------------------------------------ helpers
    def _report(self, phase: str, **kw) -> None:
        self._progress(LearnProgress(phase, self.moves, **kw))

    def _check_cancel(self) -> None:
        if self._cancelled():
            raise Cancelled("cancelled")

    def _measure(self, q: np.ndarray, kind: str) -> ForwardResult:
        """Move the robot through ``q`` (N, dof) in batches, checking for cancellation between them."""
        if hasattr(self.robot, "kind"):
            self.robot.kind = kind
        results = []
        for s in range(0, len(q), 10):
            self._check_cancel()
            results.append(self.robot.evaluate(torch.tensor(q[s : s + 10], dtype=torch.float64)))
            self.moves += len(q[s : s + 10])
            self._report("measure" if kind == "identify" else "evaluate", progress=min(1.0, (s + 10) / len(q)))
        return ForwardResult(*(torch.cat([getattr(r, f) for r in results]) for f in ("q", "position", "rotation", "valid")))

    def random_configurations(self, n: int) -> np.ndarray:
        """(n, dof) uniform joints within the learning limits less ``joint_margin``."""
        lo, hi = self.chain.learning_limits()
        m = self.config.joint_margin
        lo, hi = lo + np.minimum(m, (hi - lo) / 4), hi - np.minimum(m, (hi - lo) / 4)
        if self._feasible is None:
            return lo + (hi - lo) * self._rng.random((n, self.chain.dof))
        found: list[np.ndarray] = []
        for _ in range(1000):  # rejection sampling; a workspace that admits nothing ends it
            for q in lo + (hi - lo) * self._rng.random((max(n, 16), self.chain.dof)):
                if self._feasible(q):
                    found.append(q)
            if len(found) >= n:
                return np.stack(found[:n])
        raise ValueError(f"found only {len(found)} of {n} configurations the safety layer allows; check its floor / workspace settings")

    @torch.no_grad()
    def measure_model(self, solve_chain: KinematicChain | None = None) -> tuple[float, float]:
        """Mean position error (mm) on the robot of the model alone and, with ``solve_chain`` (and
        a ``refine`` given to the adapter), of refined IK answers on that chain: (model alone, refined or NaN)."""
        n = self.config.eval_targets
        first = self._measure(self.random_configurations(n), "evaluate")
        ok = first.valid
        if not ok.any():
            return math.nan, math.nan
        target = first.position[ok].double()
        rot = first.rotation[ok].double() if self.model.config.target == "pose" else None
        self.model.eval()
        q = self.model.sample(target, rot, 1, generator=torch.Generator().manual_seed(self.config.seed)).q[:, 0].double().cpu()
        reached = self._measure(q.numpy(), "evaluate")
        alone = _mean_mm(reached, target)
        refined = math.nan
        if solve_chain is not None and self._refine is not None:
            q_ref, good = self._refine(self.model, solve_chain, target, rot)
            if good.any():
                q_ref = q_ref[good]
                reached_ref = self._measure(q_ref.numpy(), "evaluate")
                refined = _mean_mm(reached_ref, target[good])
        return alone, refined

    # ------------------------------------------------------------ checkpoints
    def _save(self, name: str, chain: KinematicChain, urdf: str, extra: dict) -> Path:
        """Atomically publish a new checkpoint version and point ``NAME.latest`` at it."""
        version = int(time.time() * 1000)
        base = self.output_dir / f"{name}.{version}"
        save_checkpoint(base, self.model, chain, training=extra)  # weights, then the JSON: each atomic
        urdf_path = self.output_dir / f"{name}.urdf"
        _atomic_write(urdf_path, urdf)
        _atomic_write(self.output_dir / f"{name}.latest", json.dumps({"checkpoint": base.name, "urdf": urdf_path.name}))
        return base

    def latest(self, name: str) -> Path | None:
        pointer = self.output_dir / f"{name}.latest"
        if not pointer.is_file() or pointer.stat().st_size > 4096:
            return None
        try:
            data = json.loads(pointer.read_text())
            base = self.output_dir / str(data["checkpoint"])
        except (ValueError, KeyError, TypeError):
            return None
        return base if Path(f"{base}.json").is_file() else None

    # ------------------------------------------------------------ strategies
    def run(self, goal: LearnGoal) -> LearnOutcome:
        start = time.monotonic()
        name = goal.output or goal.strategy
        try:
            if goal.strategy == "calibrate":
                out = self._calibrate(goal, name)
            elif goal.strategy == "robot":
                out = self._robot(goal, name)
            else:
                out = self._calibration_file(goal, name)
        except Cancelled:
            return LearnOutcome(False, f"cancelled after {self.moves} move(s); {len(self.log)} sample(s) recorded", moves=self.moves, minutes=(time.monotonic() - start) / 60)
        return LearnOutcome(**{**out.to_dict(), "moves": self.moves, "minutes": (time.monotonic() - start) / 60})

    def _identify_samples(self, wanted: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The valid identification samples of the first ``wanted`` moves (the move budget counts
        failed moves too); moves already recorded in the log are not made again."""
        have = sum(s.kind == "identify" for s in self.log.samples)
        if have < wanted:
            self._report("measure", message=f"{have} identification move(s) recorded, measuring {wanted - have} more")
            self._measure(self.random_configurations(wanted - have), "identify")
        else:
            self._report("measure", message=f"{have} identification move(s) recorded: none to make")
        first = [s for s in self.log.samples if s.kind == "identify"][:wanted]
        ok = [s for s in first if s.valid and np.all(np.isfinite(s.q)) and np.all(np.isfinite(s.position))]
        if not ok:
            return np.zeros((0, self.chain.dof)), np.zeros((0, 3)), np.zeros((0, 4))
        return np.stack([s.q for s in ok]), np.stack([s.position for s in ok]), np.stack([s.quaternion for s in ok])

    def _calibrate(self, goal: LearnGoal, name: str) -> LearnOutcome:
        if self.identify is None:
            raise ValueError("strategy calibrate needs an identification function")
        before, _ = self.measure_model()
        self._report("evaluate", precision_mm=before, message=f"model alone on the robot before: {before:.3f} mm")
        wanted = goal.max_moves or self.config.identify_moves
        q, p, quat = self._identify_samples(wanted)
        if len(q) < 7:
            return LearnOutcome(False, f"only {len(q)} valid identification sample(s); need at least 7", error_before_mm=before)
        self._report("identify", message=f"identifying the kinematics from {len(q)} samples")
        chain, urdf, report = self.identify(self.chain, q, p, quat)
        return self._train_and_measure(goal, name, chain, urdf, before, {"strategy": "calibrate", "identification": report})

    def _calibration_file(self, goal: LearnGoal, name: str) -> LearnOutcome:
        if self.read_calibration is None:
            raise ValueError("strategy calibration_file needs a calibration reader")
        chain, urdf = self.read_calibration(self.chain, goal.calibration_file)
        before, _ = self.measure_model()
        self._report("evaluate", precision_mm=before)
        return self._train_and_measure(goal, name, chain, urdf, before, {"strategy": "calibration_file", "calibration_file": goal.calibration_file})

    def _robot(self, goal: LearnGoal, name: str) -> LearnOutcome:
        """Black-box CEMSSL with the robot as the forward model, within the move and time budgets.

        A checkpoint is written at most ``checkpoint_every`` seconds apart; the same goal again
        (after a crash) continues from the last one, and the moves the log already holds for it
        count against the budget."""
        from .blackbox import BlackBoxCEMSSL, BlackBoxConfig

        resumed = self.latest(name)
        if resumed is not None:
            try:
                self.model, _ = load_checkpoint(str(resumed), self.chain)
                self._report("train", message=f"resuming from {resumed.name}")
            except Exception as exc:  # noqa: BLE001 - a checkpoint for another chain: start from the model given
                self._report("train", message=f"not resuming from {resumed.name}: {exc}")
                resumed = None
        before, _ = self.measure_model()
        self._report("evaluate", precision_mm=before, message=f"model alone on the robot before: {before:.3f} mm")
        c = self.config
        budget = goal.max_moves or 20 * c.identify_moves
        spent = sum(s.kind == "cemssl" for s in self.log.samples) if resumed is not None else 0
        left = max(0, budget - spent)
        members = self.model.num_members
        cfg = BlackBoxConfig(
            iterations=1_000_000, max_evaluations=left, max_seconds=(goal.max_minutes or c.train_minutes) * 60,
            samples_per_iteration=max(members, min(2000, budget // 5)), eval_targets=max(members, min(500, budget // 20)),
            eval_every=2, lr=c.robot_lr, lr_final=c.robot_lr_final, epochs=c.robot_epochs, task_weight=c.robot_task_weight, adam_eps=c.adam_eps, seed=c.seed + spent,
        )  # fmt: skip
        if hasattr(self.robot, "kind"):
            self.robot.kind = "cemssl"
        moves_at_start = self.moves
        trainer = BlackBoxCEMSSL(self.model, self.chain, cfg, _CancellableForwardModel(self.robot, self._check_cancel), random_joints=lambda n: torch.as_tensor(self.random_configurations(n)))
        started = last_save = time.monotonic()

        def on_iteration(stats) -> None:
            nonlocal last_save
            self.moves = moves_at_start + stats.evaluations
            done = trainer.current_progress()
            eta = (time.monotonic() - started) * (1 - done) / done if done > 0 else math.nan
            measured = stats.eval_error_mean * 1e3 if stats.eval_error_mean is not None else math.nan
            self._report("train", precision_mm=measured, progress=done, eta_s=eta, message=f"iteration {stats.iteration}: {spent + stats.evaluations}/{budget} moves, sampled error {stats.sampled_error_mean * 1e3:.3f} mm, held-out {measured:.3f} mm")
            if time.monotonic() - last_save > c.checkpoint_every:
                self._save(name, self.chain, _nominal_urdf(), {"strategy": "robot", "phase": "training", "iteration": stats.iteration, "robot_moves": spent + stats.evaluations})
                last_save = time.monotonic()

        # the trainer needs the held-out set twice (measured once, then the model's answers) and one sampling batch
        if left < cfg.samples_per_iteration + 3 * cfg.eval_targets:
            self._report("train", message=f"{spent} of {budget} moves already made for this goal: nothing left to train with")
            return self._robot_outcome(goal, name, before, spent, trainer, "budget spent")
        reason = trainer.run(on_iteration)
        return self._robot_outcome(goal, name, before, spent, trainer, reason)

    def _robot_outcome(self, goal: LearnGoal, name: str, before: float, spent: int, trainer, reason: str) -> LearnOutcome:
        self.model.eval()
        self._report("evaluate", message="measuring the model on the robot")
        after, refined = self.measure_model(self.chain)
        record = {"strategy": "robot", "phase": "done", "error_before_mm": before, "error_after_mm": after, "stop": reason, "robot_moves": spent + trainer.evaluations, "training": trainer.summary()}
        base = self._save(name, self.chain, _nominal_urdf(), record)
        self._report("save", precision_mm=after, progress=1.0, message=f"saved {base.name}")
        return LearnOutcome(
            True,
            f"model alone on the robot: {before:.3f} mm -> {after:.3f} mm after {trainer.iteration} black-box CEMSSL iteration(s), {spent + trainer.evaluations} moves; refined answers (nominal chain) {refined:.3f} mm",
            checkpoint=str(base) + ".safetensors", urdf=str(self.output_dir / f"{name}.urdf"),
            error_before_mm=before, error_after_mm=after, refined_error_mm=refined, iterations=trainer.iteration,
        )  # fmt: skip

    def _train_and_measure(self, goal: LearnGoal, name: str, chain: KinematicChain, urdf: str, before: float, record: dict) -> LearnOutcome:
        # the chain exactly as a URDF consumer (the IK service) will rebuild it from the text, so
        # that the checkpoint's kinematics hash matches theirs
        chain = chain_from_urdf(urdf, self.chain.base_link, self.chain.tip_link)
        resumed = self.latest(name)
        if resumed is not None:
            try:
                self.model, _ = load_checkpoint(str(resumed), chain)
                self._report("train", message=f"resuming from {resumed.name}")
            except Exception as exc:  # noqa: BLE001 - a checkpoint for another chain: start from the model given
                self._report("train", message=f"not resuming from {resumed.name}: {exc}")
        minutes = goal.max_minutes or self.config.train_minutes
        c = self.config
        cfg = UnsupervisedConfig(
            steps=10_000_000, batch_size=c.batch_size, lr=c.lr, lr_final=c.lr_final, rotation_weight=c.rotation_weight,
            eval_every=0, max_seconds=minutes * 60, seed=c.seed, position_loss=c.position_loss,
            distance_scale=c.distance_scale if c.position_loss == "distance" else 0.0, adam_eps=c.adam_eps,
        )  # fmt: skip
        trainer = UnsupervisedTrainer(self.model, chain, cfg)
        last_save = [time.monotonic()]
        started = time.monotonic()

        def on_step(step: int, losses: dict, err) -> None:
            self._check_cancel()
            if step == 1 or step % 25 == 0:  # the first step too: the phase shows at once
                done = trainer.current_progress()
                self._report("train", progress=done, eta_s=max(0.0, minutes * 60 - (time.monotonic() - started)), message=f"step {step}, loss {losses['loss']:.3e}")
            if time.monotonic() - last_save[0] > c.checkpoint_every:
                self._save(name, chain, urdf, {**record, "phase": "training", "step": step})
                last_save[0] = time.monotonic()

        self.model.train()
        trainer.run(on_step)
        self.model.eval()
        self._report("evaluate", message="measuring the adapted model on the robot")
        after, refined = self.measure_model(chain)
        base = self._save(name, chain, urdf, {**record, "phase": "done", "error_before_mm": before, "error_after_mm": after, "refined_error_mm": refined})
        self._report("save", precision_mm=after, progress=1.0, message=f"saved {base.name}")
        return LearnOutcome(
            True,
            f"model alone on the robot: {before:.3f} mm -> {after:.3f} mm; refined answers {refined:.5f} mm",
            checkpoint=str(base) + ".safetensors",
            urdf=str(self.output_dir / f"{name}.urdf"),
            error_before_mm=before,
            error_after_mm=after,
            refined_error_mm=refined,
            identification=record.get("identification"),
        )


class _CancellableForwardModel:
    """The robot, with a cancellation check before every batch it is sent (cancel stops between moves)."""

    def __init__(self, inner: ForwardModel, check: Callable[[], None], batch: int = 10) -> None:
        self.inner, self.check, self.batch = inner, check, batch

    def evaluate(self, q: torch.Tensor) -> ForwardResult:
        parts = []
        for s in range(0, len(q), self.batch):
            self.check()
            parts.append(self.inner.evaluate(q[s : s + self.batch]))
        return ForwardResult(*(torch.cat([getattr(r, f) for r in parts]) for f in ("q", "position", "rotation", "valid")))


def identify_from_samples(chain: KinematicChain, q: np.ndarray, position: np.ndarray, quaternion: np.ndarray | None):
    """The ``calibrate`` strategy's identification (:func:`~.calibration.calibrate_chain`):
    (identified chain, its URDF text, a JSON-able report).  Orientations are used where every
    sample has one."""
    from ..kinematics import quaternion_to_matrix
    from .calibration import calibrate_chain

    rotation = None
    if quaternion is not None and len(quaternion) and np.all(np.isfinite(quaternion)):
        rotation = quaternion_to_matrix(np.asarray(quaternion, dtype=np.float64))
    res = calibrate_chain(chain, q, position, rotation, urdf=_nominal_urdf())
    report = {
        "samples": res.samples,
        "position_only": res.position_only,
        "residual_before_mm": res.before.mean_position_mm,
        "residual_after_mm": res.after.mean_position_mm,
        "orientation_residual_after_deg": res.after.mean_orientation_deg,
        "unidentifiable": list(res.unidentifiable),
        "corrections": res.parameter_dict(),
        "converged": res.converged,
    }
    return res.chain, res.urdf, report


def chain_from_calibration_file(chain: KinematicChain, path: str):
    """The ``calibration_file`` strategy's reader: a UR calibration YAML -> (chain, its URDF text)."""
    from ..kinematics.ur_calibration import apply_ur_calibration, load_ur_calibration
    from .calibration import calibrated_urdf

    calibrated = apply_ur_calibration(chain, load_ur_calibration(path))
    origins = {j.name: j.origin for j in calibrated.joints if j.movable}
    return calibrated, calibrated_urdf(_nominal_urdf(), origins)


def _nominal_urdf() -> str:
    from ..kinematics import shipped_urdf

    return shipped_urdf("ur3")


def _mean_mm(reached: ForwardResult, target: torch.Tensor) -> float:
    ok = reached.valid
    if not ok.any():
        return math.nan
    return float((reached.position[ok].double() - target[ok]).norm(dim=-1).mean()) * 1e3


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
