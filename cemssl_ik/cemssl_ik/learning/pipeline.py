"""Run a training recipe: build (or load) the model, run its phases in order, save the checkpoint.

:func:`train_model` starts from a fresh model of the recipe's architecture or from the checkpoint
it fine-tunes, then hands the model to one runner per phase (:data:`PHASE_RUNNERS`, keyed by the
phase's kind).  Checkpoints are written atomically along the way (a CEMSSL phase saves every
minute, with its trainer state so that ``resume`` can continue it).  The checkpoint's JSON records
the recipe, the command, the git commit, the parent's weights hash and, per phase, what it did and
whether its weights survived; the learning curves go to the ``NAME.curves.json`` sidecar.

Adding a phase kind: write a config dataclass (defaults, validation in ``__post_init__``,
``to_dict()``) and a runner ``runner(ctx: PhaseContext, config) -> PhaseOutcome``, then call
:func:`register_phase_kind`.  The runner trains ``ctx.model`` (or returns a new model in its
outcome), reports progress through ``ctx.report`` and may use ``ctx.evaluate``, the caller's
held-out evaluation, instead of evaluating on its own.  Recipes can then name the kind.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..kinematics.chain import KinematicChain
from ..kinematics.perturbation import KinematicPerturbation, perturbed_chain, uniform_link_change
from ..kinematics.robots import load_robot
from ..models import IKGenerator, check_residual_stage, load_checkpoint, new_model, save_checkpoint, with_base_symmetry, with_residual_stage
from ..models.checkpoint import atomic_write_bytes
from ..models.provenance import trained_by_label
from .blackbox import BlackBoxCEMSSL
from .cemssl import CEMSSLConfig, CEMSSLTrainer
from .forward_model import AnalyticForwardModel
from .recipe import PHASE_KINDS, BlackBoxPhaseConfig, PhaseKind, Recipe, ResidualConfig
from .supervised import SupervisedConfig, SupervisedTrainer
from .unsupervised import UnsupervisedConfig, UnsupervisedTrainer

__all__ = ["FINAL_FIGURES", "TrainOptions", "TrainResult", "PhaseContext", "PhaseOutcome", "PHASE_RUNNERS", "register_phase_kind", "train_model"]

#: evaluation of a model on held-out targets -> figures such as {"eval_error_mean": metres}
Evaluate = Callable[[IKGenerator], dict[str, Any]]
#: the figures of :meth:`cemssl_ik.evaluation.evaluate.ModelEvaluation.to_dict` a checkpoint's record keeps as ``final``
FINAL_FIGURES = ("position_error_mm", "orientation_error_deg", "in_limits_fraction", "num_targets", "class_coverage", "mmd")


@dataclass
class TrainOptions:
    """How to run a recipe (what does not change the trained model's recipe).

    Attributes:
        out: checkpoint path to write (``out.safetensors``, ``out.json``, ``out.curves.json``).
        device, dtype: where and in which precision to train.
        resume: continue the recipe's CEMSSL phase from ``out``'s saved trainer state (the
            phases before it are taken as done).
        command: the command line, recorded in the checkpoint.
        evaluate: held-out evaluation of the final model (and for phase runners that take one),
            ``evaluate(model)`` on the recipe's robot, ``evaluate(model, arm=chain)`` on the arm a
            phase adapted the model to; without it the final figures are the last phase's own
            held-out evaluation.
    """

    out: str | Path = "model"
    device: str = "cpu"
    dtype: str = "float32"
    resume: bool = False
    command: str = ""
    evaluate: Evaluate | None = None


@dataclass
class TrainResult:
    model: IKGenerator
    path: Path
    summary: dict[str, Any]


@dataclass
class PhaseContext:
    """What a phase runner works with.

    Attributes:
        model: the model as the phases before left it.
        chain: the robot.
        report: ``report(kind, info)`` progress callback.
        save: ``save(record)`` writes a checkpoint of the run so far, ``record`` describing the
            phase in progress.
        resume: continue from the trainer state saved at ``out`` (CEMSSL).
        out: the checkpoint path (for trainer state files).
        evaluate: the caller's held-out evaluation, or None.
    """

    model: IKGenerator
    chain: KinematicChain
    report: Callable[[str, dict], None]
    save: Callable[[dict], Path]
    resume: bool = False
    out: str | Path = "model"
    evaluate: Evaluate | None = None


@dataclass
class PhaseOutcome:
    """What a phase did.

    Attributes:
        model: the model after the phase (the context's, or a new one).
        record: figures for the checkpoint (steps or iterations done, stop reason, held-out error
            ``eval_error_mean`` of the weights the phase leaves, ...), JSON-serializable, small.
        curves: learning curves for the sidecar file (any size).
        survived: whether the phase changed the weights the model leaves with (False when it ran
            no step, or when keep-best restored the weights it started from).
        arm: the arm the phase adapted the model to, when it is not the recipe's robot (the final
            figures are then measured on it: ``evaluate(model, arm=arm)``).
    """

    model: IKGenerator
    record: dict[str, Any]
    curves: dict[str, Any] = field(default_factory=dict)
    survived: bool = True
    arm: KinematicChain | None = None


Runner = Callable[[PhaseContext, Any], PhaseOutcome]


def _last_eval(history: list[dict]) -> float | None:
    evals = [h.get("eval_error_mean_average", h.get("eval_error_mean")) for h in history]
    evals = [e for e in evals if e is not None]
    return evals[-1] if evals else None


def _run_steps(ctx: PhaseContext, kind: str, trainer: SupervisedTrainer | UnsupervisedTrainer, steps: int) -> PhaseOutcome:
    reason = trainer.run(lambda s, info, err: ctx.report(kind, {"step": s, "steps": steps, **info, "eval_error_mean": err}))
    record: dict[str, Any] = {"steps": trainer.step_count, "stop": reason, "eval_error_mean": _last_eval(trainer.history)}
    if trainer.average_result:
        record["average"] = trainer.average_result
    return PhaseOutcome(ctx.model, record, {"history": trainer.history}, survived=trainer.step_count > 0)


def run_pretrain(ctx: PhaseContext, config: SupervisedConfig) -> PhaseOutcome:
    """Supervised training on FK samples (:class:`SupervisedTrainer`)."""
    return _run_steps(ctx, "pretrain", SupervisedTrainer(ctx.model, ctx.chain, config), config.steps)


def run_fkloss(ctx: PhaseContext, config: UnsupervisedConfig) -> PhaseOutcome:
    """FK-loss training (:class:`UnsupervisedTrainer`)."""
    return _run_steps(ctx, "fkloss", UnsupervisedTrainer(ctx.model, ctx.chain, config), config.steps)


def run_residual(ctx: PhaseContext, config: ResidualConfig) -> PhaseOutcome:
    """Adds a residual stage (if the model has none) and trains it alone by FK loss.  The new
    stage's initialization is drawn after seeding with the phase's seed, so it does not depend on
    what the phases before consumed (as when the stage was added in a run of its own)."""
    had_stage = bool(ctx.model.config.residual_stage)
    torch.manual_seed(config.seed)
    ctx.model = with_residual_stage(ctx.model, config.stage, config.scale)
    outcome = _run_steps(ctx, "residual", UnsupervisedTrainer(ctx.model, ctx.chain, config), config.steps)
    if not had_stage:
        outcome.record["residual_stage_added"] = {"hidden": list(config.stage), "scale": config.scale}
    return outcome


def _state_path(out: str | Path) -> Path:
    p = Path(out)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".state.safetensors")


def _save_state(out: str | Path, trainer: CEMSSLTrainer) -> None:
    from safetensors.torch import save

    tensors = trainer.state_tensors()
    meta = {"iteration": str(trainer.iteration), "history": json.dumps(trainer.history)}
    atomic_write_bytes(_state_path(out), save(tensors, metadata=meta))


def _load_state(out: str | Path, trainer: CEMSSLTrainer) -> None:
    from safetensors import safe_open

    path = _state_path(out)
    if not path.is_file():
        raise FileNotFoundError(f"resume: no trainer state {path} (it is written next to the checkpoint during CEMSSL phases)")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    trainer.load_state_tensors(tensors, int(meta["iteration"]), json.loads(meta["history"]))


def run_cemssl(ctx: PhaseContext, config: CEMSSLConfig) -> PhaseOutcome:
    """CEMSSL iterations (:class:`CEMSSLTrainer`); a checkpoint and the trainer state are saved at
    most a minute apart, so an interrupted phase can be resumed."""
    if not config.iterations:
        return PhaseOutcome(ctx.model, {"iterations": 0, "stop": "no iterations"}, survived=False)
    trainer = CEMSSLTrainer(ctx.model, ctx.chain, config)
    if ctx.resume:
        _load_state(ctx.out, trainer)
    last_save = time.perf_counter()

    def on_iteration(stats) -> None:
        nonlocal last_save
        ctx.report("cemssl", {**stats.__dict__, "iterations": config.iterations})
        if time.perf_counter() - last_save > 60 or stats.iteration == config.iterations:
            ctx.save({"iterations": trainer.iteration, "stop": "running"})
            _save_state(ctx.out, trainer)
            last_save = time.perf_counter()

    reason = trainer.run(on_iteration)
    _save_state(ctx.out, trainer)
    # keep-best that never beat the starting weights restores them: this phase left nothing
    discarded = config.keep_best and trainer.initial_error is not None and trainer.best_iteration == 0
    evals = [h["eval_error_mean"] for h in trainer.history if h["eval_error_mean"] is not None]
    final = trainer.initial_error if discarded else (trainer.best_error if trainer.best_iteration else (evals[-1] if evals else None))
    record = {
        "iterations": trainer.iteration,
        "stop": reason,
        "best_iteration": trainer.best_iteration,
        "initial_eval_error_mean": trainer.initial_error,
        "best_eval_error_mean": trainer.best_error if trainer.best_iteration else None,
        "eval_error_mean": final,
    }
    return PhaseOutcome(ctx.model, record, {"history": trainer.history}, survived=trainer.iteration > 0 and not discarded)


def run_blackbox_cemssl(ctx: PhaseContext, config: BlackBoxPhaseConfig) -> PhaseOutcome:
    """Black-box CEMSSL against a simulated arm (the FK of ``arm_urdf``, links changed by
    ``arm_link_change``), only ever called; the record names the arm."""
    arm = ctx.chain
    if config.arm_urdf:
        arm = load_robot(config.arm_urdf, ctx.chain.base_link, ctx.chain.tip_link)
        if arm.joint_names != ctx.chain.joint_names:
            raise ValueError(f"arm_urdf {config.arm_urdf}: joints {arm.joint_names} differ from the robot's {ctx.chain.joint_names}")
    if config.arm_link_change:
        arm = perturbed_chain(arm, KinematicPerturbation(link_length_changes=uniform_link_change(arm, config.arm_link_change)))
    trainer = BlackBoxCEMSSL(ctx.model, ctx.chain, config.trainer_config(), AnalyticForwardModel(arm))
    reason = trainer.run(lambda stats: ctx.report("blackbox_cemssl", {**stats.__dict__, "loss": stats.train_loss, "iterations": config.iterations}))
    summary = trainer.summary()
    final = summary["best_eval_error_mean"] if config.keep_best else next((h["eval_error_mean"] for h in reversed(trainer.history) if h["eval_error_mean"] is not None), None)
    record = {
        "iterations": trainer.iteration,
        "forward_evaluations": trainer.evaluations,
        "stop": reason,
        "best_iteration": summary["best_iteration"],
        "initial_eval_error_mean": trainer.initial_error,
        "eval_error_mean": final,
        "arm": {"urdf": config.arm_urdf or None, "link_change": config.arm_link_change},
    }
    changed = arm is not ctx.chain
    return PhaseOutcome(ctx.model, record, {"history": trainer.history}, survived=summary["weights_survived"], arm=arm if changed else None)


#: phase kind -> its runner (kinds and their configs: :data:`~.recipe.PHASE_KINDS`)
PHASE_RUNNERS: dict[str, Runner] = {"pretrain": run_pretrain, "fkloss": run_fkloss, "cemssl": run_cemssl, "residual": run_residual, "blackbox_cemssl": run_blackbox_cemssl}


def register_phase_kind(kind: str, config: type, runner: Runner, label: Callable[[Any, str], str], build: Callable[..., Any] | None = None) -> None:
    """Make ``kind`` usable in recipes: its config dataclass, its runner, and the method label its
    surviving weights get (see :class:`~.recipe.PhaseKind`).  Refuses to replace a kind."""
    if kind in PHASE_KINDS or kind in PHASE_RUNNERS:
        raise ValueError(f"phase kind {kind!r} exists already")
    PHASE_KINDS[kind] = PhaseKind(config, label, build)
    PHASE_RUNNERS[kind] = runner


def git_commit() -> str | None:
    """The source tree's commit (``-dirty`` with uncommitted changes), or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _start_model(chain: KinematicChain, recipe: Recipe, options: TrainOptions, record: dict) -> tuple[IKGenerator, int]:
    """The model the first phase to run trains, and that phase's index."""
    dtype = getattr(torch, options.dtype)
    if options.resume:
        start = recipe.phase_index("cemssl")
        model, info = load_checkpoint(options.out, chain, device=options.device)
        if info.training.get("recipe") != recipe.name:
            raise ValueError(f"resume: {options.out} was saved by recipe {info.training.get('recipe')!r}, not {recipe.name!r}; resume it with its own recipe")
        done = info.training.get("phases", [])[:start]
        record["phases"] = [p for p in done if isinstance(p, dict)]
        for key in ("parent", "base_symmetry_added"):
            if key in info.training:
                record[key] = info.training[key]
        return model.to(dtype), start
    if recipe.finetune is not None:
        model, info = load_checkpoint(recipe.finetune.parent, chain, device=options.device)
        record["parent"] = {"name": recipe.finetune.parent, "weights_sha256": info.metadata["weights_sha256"], "trained_by": info.trained_by}
        if recipe.finetune.base_symmetry and not model.config.base_symmetry:
            model = with_base_symmetry(model, chain)
            record["base_symmetry_added"] = True
        return model.to(dtype), 0
    assert recipe.model is not None  # Recipe guarantees one of model / finetune
    torch.manual_seed(recipe.seed)
    return new_model(chain, recipe.model).to(options.device, dtype), 0


def train_model(chain: KinematicChain, recipe: Recipe, options: TrainOptions | None = None, report: Callable[[str, dict], None] | None = None) -> TrainResult:
    """Train per ``recipe``; ``report(kind, info)`` receives progress.  Returns the final model,
    the checkpoint path and the training record written to its JSON."""
    options = options or TrainOptions()
    report = report or (lambda kind, info: None)
    t_start = time.perf_counter()
    record: dict[str, Any] = {"recipe": recipe.name, "recipe_config": recipe.to_dict(), "command": options.command, "git_commit": git_commit(), "phases": []}
    model, first = _start_model(chain, recipe, options, record)
    residual = [p.config for p in recipe.phases if p.kind == "residual"]
    if residual:  # refuse another stage now, not after the other phases have trained
        check_residual_stage(model, residual[0].stage, residual[0].scale)
    curves: list[dict] = [{} for _ in record["phases"]]
    parent_label = record.get("parent", {}).get("trained_by", "")
    method = (recipe.model or model.config).method

    def label() -> str:
        labels = [parent_label] if parent_label else []
        for phase, rec in zip(recipe.phases, record["phases"]):
            if rec.get("survived"):
                labels.append(PHASE_KINDS[phase.kind].label(phase.config, method))
        return trained_by_label(labels)

    def save(current: dict | None = None) -> Path:
        phases = record["phases"] + ([{"kind": recipe.phases[len(record["phases"])].kind, **current}] if current else [])
        out = {**record, "phases": phases, "trained_by": label(), "wall_seconds": time.perf_counter() - t_start}
        return save_checkpoint(options.out, ctx.model, chain, out, curves={"recipe": recipe.name, "phases": curves})

    ctx = PhaseContext(model, chain, report, save, options.resume, options.out, options.evaluate)
    arm = None  # the arm the weights were last adapted to, when not the recipe's robot
    for index in range(first, len(recipe.phases)):
        phase = recipe.phases[index]
        outcome = PHASE_RUNNERS[phase.kind](ctx, phase.config)
        ctx.model, ctx.resume = outcome.model, False
        record["phases"].append({"kind": phase.kind, **outcome.record, "survived": outcome.survived})
        curves.append({"kind": phase.kind, **outcome.curves})
        if outcome.survived:
            arm = outcome.arm
    last = [p["eval_error_mean"] for p in record["phases"] if p.get("eval_error_mean") is not None]
    if options.evaluate is None:
        record["final"] = {"eval_error_mean": last[-1] if last else None}
    else:
        record["final"] = options.evaluate(ctx.model) if arm is None else {**options.evaluate(ctx.model, arm=arm), "measured_on": "the arm of the last surviving phase"}
    path = save()
    summary = json.loads((path.with_suffix(".json")).read_text())["training"]
    return TrainResult(ctx.model, path, summary)
