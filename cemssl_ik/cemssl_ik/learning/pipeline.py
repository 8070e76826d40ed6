"""One training run of any method, as the CLI and the learner node use it.

``train_model`` builds (or loads, for fine-tuning) a model, runs the method's trainer with periodic
evaluation, saves atomic checkpoints along the way (so an interrupted run keeps its last state and
CEMSSL runs can resume), and returns the final model with a training summary.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..kinematics.chain import KinematicChain
from ..models import IKGenerator, ModelConfig, check_residual_stage, load_checkpoint, new_model, save_checkpoint, with_base_symmetry, with_residual_stage
from ..models.checkpoint import atomic_write_bytes
from .cemssl import CEMSSLConfig, CEMSSLTrainer
from .supervised import SupervisedConfig, SupervisedTrainer
from .unsupervised import UnsupervisedConfig, UnsupervisedTrainer

__all__ = ["TrainRequest", "TrainResult", "train_model"]


@dataclass
class TrainRequest:
    """What to train.

    Attributes:
        method: cemssl | emssl | cvae | cgan | cinn | unsupervised.
        model: architecture.  When fine-tuning the checkpoint's is used, and only ``base_symmetry``
            and ``residual_stage`` are read: True gives a checkpoint without it the symmetry
            (:func:`with_base_symmetry`), and with ``residual_steps`` widths give a model without a
            residual stage a fresh one (:func:`with_residual_stage`) for the residual phase.
        cemssl: CEMSSL hyperparameters (cemssl / emssl, and fine-tuning).
        supervised: pretraining hyperparameters (cvae / cgan / cinn).
        unsupervised: FK-loss hyperparameters (unsupervised, and the CEMSSL warm start).
        warmup_steps: FK-loss steps (paper 002, the ``unsupervised`` hyperparameters) before the
            CEMSSL loop (0: none): for cemssl / emssl from scratch, or, when fine-tuning, on the
            loaded model's generator before its CEMSSL iterations.
        pretrain_steps: for cemssl / emssl from scratch: steps of regression on FK samples (motor
            babbling: uniform joints through the forward model) before the CEMSSL loop, with the
            ``supervised`` hyperparameters (0: none).  For models with branch classes this is a
            well-posed regression per branch; for a continuous latent alone it averages solutions.
        finetune: checkpoint to fine-tune with CEMSSL (the unified framework).
        out: checkpoint path to write.
        resume: continue a CEMSSL run from ``out``'s saved trainer state.
        residual_steps: FK-loss steps, with the ``residual`` hyperparameters, that train only the
            model's residual stage (``ModelConfig.residual_stage``) after every other phase, the rest of
            the model frozen (0: none).
        residual: hyperparameters of those steps (default: ``unsupervised``'s); ``train_residual`` is
            set for them.
        device, dtype: where and in which precision to train.
    """

    method: str
    model: ModelConfig
    cemssl: CEMSSLConfig = field(default_factory=CEMSSLConfig)
    supervised: SupervisedConfig = field(default_factory=SupervisedConfig)
    unsupervised: UnsupervisedConfig = field(default_factory=UnsupervisedConfig)
    warmup_steps: int = 0
    finetune: str | None = None
    out: str = "model"
    resume: bool = False
    device: str = "cpu"
    dtype: str = "float32"
    command: str = ""
    pretrain_steps: int = 0
    residual_steps: int = 0
    residual: UnsupervisedConfig | None = None


@dataclass
class TrainResult:
    model: IKGenerator
    path: Path
    summary: dict[str, Any]


def _state_path(out: str | Path) -> Path:
    p = Path(out)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".state.safetensors")


def _save_state(out: str, trainer: CEMSSLTrainer) -> None:
    from safetensors.torch import save

    tensors = trainer.state_tensors()
    meta = {"iteration": str(trainer.iteration), "history": json.dumps(trainer.history)}
    atomic_write_bytes(_state_path(out), save(tensors, metadata=meta))


def _load_state(out: str, trainer: CEMSSLTrainer) -> None:
    from safetensors import safe_open

    path = _state_path(out)
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no trainer state {path} (it is written next to the checkpoint during CEMSSL runs)")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    trainer.load_state_tensors(tensors, int(meta["iteration"]), json.loads(meta["history"]))


def _average(trainer: UnsupervisedTrainer) -> dict:
    """The phase summary's record of a weight average (:attr:`StepTrainer.average_result`), if any."""
    return {"average": trainer.average_result} if trainer.average_result else {}


def train_model(
    chain: KinematicChain,
    req: TrainRequest,
    report: Callable[[str, dict], None] | None = None,
) -> TrainResult:
    """Train per ``req``; ``report(phase, info)`` receives progress (phase: warmup | pretrain | cemssl | unsupervised | residual)."""
    report = report or (lambda phase, info: None)
    dtype = getattr(torch, req.dtype)
    t_start = time.perf_counter()
    summary: dict[str, Any] = {"method": req.method, "command": req.command, "phases": []}
    cemssl_methods = ("cemssl", "emssl")

    if req.residual_steps and not req.model.residual_stage:
        raise ValueError("residual_steps needs a residual stage: set ModelConfig.residual_stage (--residual-stage on the command line)")
    if req.finetune:
        model, info = load_checkpoint(req.finetune, chain, device=req.device)
        model.to(dtype)
        summary["finetuned_from"] = {"path": str(info.path), "method": info.metadata["method"], "training": info.training}
        summary["method"] = info.metadata["method"]
        if req.model.base_symmetry and not model.config.base_symmetry:
            model = with_base_symmetry(model, chain)
            summary["base_symmetry_added"] = True

    elif req.resume:
        model, _ = load_checkpoint(req.out, chain, device=req.device)
        model.to(dtype)
    else:
        # a residual stage joins the model for its own phase, at the end: the phases before it
        # train the first network alone, without the stage's cost
        model = new_model(chain, dataclasses.replace(req.model, residual_stage=())).to(req.device, dtype)

    if req.residual_steps:  # refuse another stage now, not after the other phases have trained
        check_residual_stage(model, req.model.residual_stage, req.model.residual_scale)

    def save(extra: dict) -> Path:
        summary.update(extra)
        summary["wall_seconds"] = time.perf_counter() - t_start
        return save_checkpoint(req.out, model, chain, summary)

    run_cemssl = req.finetune is not None or req.method in cemssl_methods
    if req.method in ("cvae", "cgan", "cinn") and not req.finetune:
        tr = SupervisedTrainer(model, chain, req.supervised)
        reason = tr.run(lambda s, info, err: report("pretrain", {"step": s, "steps": req.supervised.steps, **info, "eval_error_mean": err}))
        summary["phases"].append({"phase": "pretrain", "config": req.supervised.to_dict(), "stop": reason, "steps": tr.step_count, "history": tr.history})
    elif req.method == "unsupervised" and not req.finetune:
        tr_u = UnsupervisedTrainer(model, chain, req.unsupervised)
        reason = tr_u.run(lambda s, info, err: report("unsupervised", {"step": s, "steps": req.unsupervised.steps, **info, "eval_error_mean": err}))
        summary["phases"].append({"phase": "unsupervised", "config": req.unsupervised.to_dict(), "stop": reason, "steps": tr_u.step_count, **_average(tr_u), "history": tr_u.history})

    if run_cemssl:
        if req.pretrain_steps and not req.finetune and not req.resume:
            pre_cfg = SupervisedConfig(**{**req.supervised.to_dict(), "steps": req.pretrain_steps, "eval_every": max(1, req.pretrain_steps // 10)})
            tr_p = SupervisedTrainer(model, chain, pre_cfg)
            reason = tr_p.run(lambda s, info, err: report("pretrain", {"step": s, "steps": req.pretrain_steps, **info, "eval_error_mean": err}))
            summary["phases"].append({"phase": "pretrain", "config": pre_cfg.to_dict(), "stop": reason, "steps": tr_p.step_count, "history": tr_p.history})
        if req.warmup_steps and not req.resume:
            warm_cfg = UnsupervisedConfig(**{**req.unsupervised.to_dict(), "steps": req.warmup_steps})
            tr_w = UnsupervisedTrainer(model, chain, warm_cfg)
            reason = tr_w.run(lambda s, info, err: report("warmup", {"step": s, "steps": req.warmup_steps, **info, "eval_error_mean": err}))
            summary["phases"].append({"phase": "warmup", "config": warm_cfg.to_dict(), "stop": reason, "steps": tr_w.step_count, **_average(tr_w), "history": tr_w.history})
    if run_cemssl and req.cemssl.iterations:
        trainer = CEMSSLTrainer(model, chain, req.cemssl)
        if req.resume:
            _load_state(req.out, trainer)
        last_save = time.perf_counter()

        def on_iteration(stats) -> None:
            nonlocal last_save
            report("cemssl", {**stats.__dict__, "iterations": req.cemssl.iterations})
            # periodic checkpoint + trainer state: an interrupted run loses at most a minute
            if time.perf_counter() - last_save > 60 or stats.iteration == req.cemssl.iterations:
                save({"cemssl_partial": {"iterations_done": trainer.iteration}})
                _save_state(req.out, trainer)
                last_save = time.perf_counter()

        reason = trainer.run(on_iteration)
        summary.pop("cemssl_partial", None)
        summary["phases"].append(
            {
                "phase": "cemssl",
                "config": req.cemssl.to_dict(),
                "stop": reason,
                "iterations": trainer.iteration,
                "best_iteration": trainer.best_iteration,
                "best_eval_error_mean": trainer.best_error if trainer.best_iteration else None,
                "initial_eval_error_mean": trainer.initial_error,
                "history": trainer.history,
            }
        )
        _save_state(req.out, trainer)

    if req.residual_steps:
        had_stage = bool(model.config.residual_stage)
        model = with_residual_stage(model, req.model.residual_stage, req.model.residual_scale)
        if not had_stage:
            summary["residual_stage_added"] = {"hidden": list(req.model.residual_stage), "scale": req.model.residual_scale}
        ref_cfg = dataclasses.replace(req.residual or req.unsupervised, steps=req.residual_steps, train_residual=True)
        tr_r = UnsupervisedTrainer(model, chain, ref_cfg)
        reason = tr_r.run(lambda s, info, err: report("residual", {"step": s, "steps": req.residual_steps, **info, "eval_error_mean": err}))
        summary["phases"].append({"phase": "residual", "config": ref_cfg.to_dict(), "stop": reason, "steps": tr_r.step_count, **_average(tr_r), "history": tr_r.history})

    path = save({})
    return TrainResult(model, path, summary)
