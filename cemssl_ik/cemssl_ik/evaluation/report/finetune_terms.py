"""Section ``finetune_terms``: which loss term fine-tunes the shipped CGAN baseline, at equal wall time.

Four runs from ``ur3_cgan``, each for the same wall-time budget: the shipped fine-tuning recipe
(``ur3_cgan_cemssl_fk``: CEMSSL iterations plus the FK-loss term) as it is, with the FK-loss term
off (CEMSSL alone), the FK loss alone (an ``fkloss`` phase with its defaults), and black-box
CEMSSL (a ``blackbox_cemssl`` phase with its defaults, which only calls the forward model).  Held-out learning curves, and precision, class coverage
and MMD of each final model (:func:`~..evaluate.evaluate_model`).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...kinematics import load_robot
from ...learning.pipeline import TrainOptions, train_model
from ...learning.recipe import BlackBoxPhaseConfig, Phase, Recipe, apply_overrides, load_recipe
from ...learning.targets import EVAL_SEED_OFFSET, sample_targets
from ...learning.unsupervised import UnsupervisedConfig
from ...models import load_checkpoint
from ..evaluate import evaluate_model
from .base import Context, SectionResult, md_table, pyplot, save_figure

__all__ = ["FinetuneTermsResult", "TermRow", "ARMS", "arm_recipe", "run", "template_values"]

#: the shipped fine-tuning recipe the arms vary, and its parent
RECIPE = "ur3_cgan_cemssl_fk"
PARENT = "ur3_cgan"
#: arm -> how it differs from the shipped recipe
ARMS = {
    "cemssl + FK term": "the shipped recipe",
    "cemssl": "the shipped recipe with cemssl.fk_loss_weight=0",
    "FK loss": "an fkloss phase (defaults) from the same parent",
    "black-box CEMSSL": "a blackbox_cemssl phase (defaults) from the same parent, the nominal arm as its forward model",
}


def arm_recipe(arm: str, seconds: float, quick: bool, seed: int) -> Recipe:
    """The recipe of one arm, stopped by ``seconds`` of wall time."""
    base = load_recipe(RECIPE)
    if arm == "FK loss":
        config = UnsupervisedConfig(steps=10_000_000, eval_every=50 if quick else 500, max_seconds=seconds, seed=seed)
        return Recipe(name="report_fkloss_from_cgan", phases=[Phase("fkloss", config)], robot=base.robot, finetune=base.finetune, seed=seed)
    if arm == "black-box CEMSSL":
        small = {"samples_per_iteration": 512, "eval_targets": 200} if quick else {}
        config = BlackBoxPhaseConfig(iterations=1_000_000, max_seconds=seconds, seed=seed, **small)
        return Recipe(name="report_blackbox_from_cgan", phases=[Phase("blackbox_cemssl", config)], robot=base.robot, finetune=base.finetune, seed=seed)
    sets = ["cemssl.iterations=1000000", f"cemssl.max_seconds={seconds}", f"cemssl.seed={seed}", f"cemssl.eval_every={1 if quick else 5}"]
    if quick:
        sets += ["cemssl.samples_per_iteration=512", "cemssl.eval_targets=200"]
    if arm == "cemssl":
        sets.append("cemssl.fk_loss_weight=0")
    elif arm != "cemssl + FK term":
        raise ValueError(f"unknown arm {arm!r}; known: {list(ARMS)}")
    return apply_overrides(base, sets)


@dataclass
class TermRow(SectionResult):
    arm: str
    train_seconds: float
    curve: list[list[float]]  # [seconds, held-out mean error m]
    evaluation: dict  # ModelEvaluation.to_dict() without its tensors' sizes


@dataclass
class FinetuneTermsResult(SectionResult):
    parent: str
    recipe: str
    seconds_each: float
    start: dict
    rows: list[TermRow]
    figures: dict[str, str] = field(default_factory=dict)


def _train(recipe: Recipe, chain) -> tuple[object, list[list[float]], float]:
    curve: list[list[float]] = []
    t0 = time.perf_counter()

    def note(kind: str, info: dict) -> None:
        if info.get("eval_error_mean") is not None:
            curve.append([time.perf_counter() - t0, float(info["eval_error_mean"])])

    with tempfile.TemporaryDirectory(prefix="cemssl_report_") as tmp:
        result = train_model(chain, recipe, TrainOptions(out=Path(tmp) / recipe.name, command="cemssl-ik bench report"), note)
    return result.model.eval(), curve, time.perf_counter() - t0


def run(ctx: Context) -> FinetuneTermsResult:
    s = ctx.scale
    chain = load_robot("ur3")
    targets = sample_targets(chain, s.ur3_targets, torch.Generator().manual_seed(ctx.seed + EVAL_SEED_OFFSET))
    kw = {"targets": targets, "seed": ctx.seed, "diversity_targets": s.diversity_targets, "diversity_samples": s.diversity_samples, "reference_orientations": s.reference_orientations}
    parent, _ = load_checkpoint(PARENT, chain)
    out = FinetuneTermsResult(PARENT, RECIPE, s.finetune_seconds, evaluate_model(parent, chain, **kw).to_dict(), [])
    for arm in ARMS:
        model, curve, seconds = _train(arm_recipe(arm, s.finetune_seconds, s.name == "quick", ctx.seed), chain)
        ev = evaluate_model(model, chain, **kw).to_dict()
        out.rows.append(TermRow(arm, seconds, curve, ev))
        ctx.log(f"  {arm}: mean {ev['position_error_mm']['mean']:.3f} mm, class coverage {ev['class_coverage']:.2f}, MMD {ev['mmd']:.3f} ({seconds:.0f} s)")
    out.figures["curves"] = _curves_figure(ctx, out)
    return out


def _curves_figure(ctx: Context, r: FinetuneTermsResult) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in r.rows:
        if row.curve:
            t, e = zip(*row.curve)
            ax.plot(t, np.asarray(e) * 1e3, label=row.arm)
    ax.axhline(r.start["position_error_mm"]["mean"], color="k", ls=":", label=f"{r.parent} (start)")
    ax.set_yscale("log")
    ax.set_xlabel("training time [s]")
    ax.set_ylabel("held-out mean position error [mm]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Fine-tuning {r.parent}: loss terms at equal wall time")
    return save_figure(ctx, fig, "finetune_terms_curves.png")


def template_values(r: FinetuneTermsResult) -> dict[str, str]:
    """The ``finetune_terms`` block's placeholders."""

    def cells(name: str, ev: dict, seconds: float | None) -> list:
        e = ev["position_error_mm"]
        return [name, e["mean"], e["median"], e["p95"], ev["success"]["<=1mm"] * 100, ev["class_coverage"], ev["mmd"], seconds]

    rows = [cells(f"{r.parent} (start)", r.start, None)] + [cells(x.arm, x.evaluation, x.train_seconds) for x in r.rows]
    return {
        "parent": r.parent,
        "recipe": r.recipe,
        "seconds": f"{r.seconds_each:.0f}",
        "arms": "; ".join(f"{arm}: {how}" for arm, how in ARMS.items()),
        "table": md_table(["run", "mean mm", "median mm", "p95 mm", "≤1 mm %", "class coverage", "MMD", "train s"], rows),
        "figure_curves": r.figures.get("curves", ""),
    }
