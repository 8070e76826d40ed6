"""Section ``ur3_position``: the shipped UR3 position-only models (CEMSSL paper, Table II and Fig. 4).

Precision, success rates, class coverage and MMD to the analytic reference posterior of each
shipped model (:func:`~..evaluate.evaluate_model`), error CDFs, before/after fine-tuning bars, arm
overlays and a workspace cross-section of the most precise model's error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ...kinematics import load_robot
from ...kinematics.chain import KinematicChain
from ...learning.targets import EVAL_SEED_OFFSET, sample_targets
from ...models import load_checkpoint
from ..evaluate import evaluate_model
from ..plots import plot_arm_overlays
from ..precision import summarize
from .base import Context, SectionResult, errors, md_table, pyplot, save_figure
from .papers import CEMSSL_FINETUNED_MM, CEMSSL_TABLE_II_MM

__all__ = ["BASELINES", "FINETUNED", "POSITION_MODEL", "RESIDUAL", "UR3_POSITION_MODELS", "ModelRow", "UR3PositionResult", "run", "template_values"]

#: pretrained baselines and, for each, its version fine-tuned by CEMSSL with an FK-loss term
BASELINES = ("ur3_cvae", "ur3_cgan", "ur3_cinn")
FINETUNED = {b: f"{b}_cemssl_fk" for b in BASELINES}
#: baselines left as they are, followed by a residual stage trained by the FK loss
RESIDUAL = {"ur3_cgan": "ur3_cgan_fkresidual"}
#: the shipped position model the overlays and the cross-section show
POSITION_MODEL = "ur3_fkloss_position"
UR3_POSITION_MODELS = (*BASELINES, POSITION_MODEL, *FINETUNED.values(), *RESIDUAL.values())


def paper_mean_mm(name: str) -> float | None:
    """The CEMSSL paper's figure for the method that produced a shipped model, where it reports one."""
    if name in FINETUNED.values():
        return CEMSSL_FINETUNED_MM
    return CEMSSL_TABLE_II_MM.get(name.removeprefix("ur3_"))


@dataclass
class ModelRow(SectionResult):
    """One shipped model: errors in mm, success rates, diversity against the analytic posterior."""

    position_error_mm: dict[str, float]
    success: dict[str, float]
    in_limits_fraction: float
    class_coverage: float
    mmd: float
    paper_mean_mm: float | None = None
    training_seconds: float | None = None
    trained_by: str | None = None  # the training that produced the surviving weights (checkpoint record)


@dataclass
class UR3PositionResult(SectionResult):
    models: dict[str, ModelRow]
    num_targets: int
    diversity_targets: int
    diversity_samples: int
    mmd_noise_floor: float
    reference_orientations: int
    figures: dict[str, str] = field(default_factory=dict)
    cross_section_error_mm: dict[str, float] | None = None


def run(ctx: Context) -> UR3PositionResult:
    s = ctx.scale
    chain = load_robot("ur3")
    targets = sample_targets(chain, s.ur3_targets, torch.Generator().manual_seed(ctx.seed + EVAL_SEED_OFFSET))
    rows, errs, floor = {}, {}, float("nan")
    for name in UR3_POSITION_MODELS:
        model, info = load_checkpoint(name, chain)
        ev = evaluate_model(
            model, chain, targets=targets, seed=ctx.seed,
            diversity_targets=s.diversity_targets, diversity_samples=s.diversity_samples, reference_orientations=s.reference_orientations,
        )
        d = ev.to_dict()
        errs[name] = ev.precision.position_error.flatten()
        floor = ev.diversity.mmd_noise_floor
        training = info.training or {}
        rows[name] = ModelRow(d["position_error_mm"], d["success"], d["in_limits_fraction"], d["class_coverage"], d["mmd"], paper_mean_mm(name), training.get("wall_seconds"), training.get("trained_by"))
        ctx.log(f"  {name}: mean {rows[name].position_error_mm['mean']:.3f} mm, class coverage {rows[name].class_coverage:.2f}, MMD {rows[name].mmd:.3f}")
    out = UR3PositionResult(rows, s.ur3_targets, s.diversity_targets, s.diversity_samples, floor, s.reference_orientations)
    out.figures["cdf"] = _cdf_figure(ctx, errs)
    out.figures["finetune"] = _finetune_figure(ctx, rows)
    model, _ = load_checkpoint(POSITION_MODEL, chain)
    out.figures["overlays"] = _overlay_figure(ctx, chain, model, targets.position[:1])
    out.figures["cross_section"], out.cross_section_error_mm = _cross_section_figure(ctx, chain, model)
    return out


def _cdf_figure(ctx: Context, errs: dict[str, torch.Tensor]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pe in errs.items():
        v = np.sort(pe.numpy() * 1e3)
        ax.plot(v, np.linspace(0, 1, len(v)), label=name, ls="--" if name in FINETUNED.values() else "-")
    ax.set_xscale("log")
    ax.set_xlabel("position error [mm] (model alone)")
    ax.set_ylabel("fraction of targets")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"UR3 position-only: error CDF over {ctx.scale.ur3_targets} held-out targets")
    return save_figure(ctx, fig, "ur3_position_error_cdf.png")


def _finetune_figure(ctx: Context, rows: dict[str, ModelRow]) -> str:
    """CEMSSL paper Fig. 4 analog: each baseline before and after fine-tuning."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(BASELINES))
    ax.bar(x - 0.2, [rows[b].position_error_mm["mean"] for b in BASELINES], 0.4, label="pretrained")
    ax.bar(x + 0.2, [rows[FINETUNED[b]].position_error_mm["mean"] for b in BASELINES], 0.4, label="+ CEMSSL fine-tuning with FK-loss term")
    ax.axhline(rows[POSITION_MODEL].position_error_mm["mean"], color="k", ls=":", label=f"FK loss from scratch ({POSITION_MODEL})")
    ax.set_xticks(x, [b.removeprefix("ur3_").upper() for b in BASELINES])
    ax.set_yscale("log")
    ax.set_ylabel("mean position error [mm]")
    ax.legend(fontsize=7)
    ax.set_title("Before / after fine-tuning (CEMSSL + FK-loss term)")
    return save_figure(ctx, fig, "ur3_finetune_bars.png")


def _overlay_figure(ctx: Context, chain: KinematicChain, model, position: torch.Tensor) -> str:
    """One target, two samples per ensemble member, one colour per member."""
    res = model.sample(position, None, 2 * model.num_members, generator=torch.Generator().manual_seed(ctx.seed + 3))
    labels = [f"member {int(m)}" for m in res.member[0]]
    plot_arm_overlays(chain, res.q[0].double(), position[0].tolist(), ctx.figure("ur3_position_overlays.png"), labels=labels, title=f"{POSITION_MODEL}: 2 samples per ensemble member, one target")
    return "results/ur3_position_overlays.png"


def _cross_section_figure(ctx: Context, chain: KinematicChain, model) -> tuple[str, dict[str, float]]:
    """The model's error over the x-z plane through the base axis (points beyond the reach blank)."""
    n = ctx.scale.cross_section
    X, Z = np.meshgrid(np.linspace(-0.6, 0.6, n), np.linspace(-0.45, 0.75, n))
    grid = torch.tensor(np.stack([X.ravel(), np.zeros(X.size), Z.ravel()], -1))
    qs = chain.sample_configurations(200_000 if ctx.scale.name == "full" else 20_000, torch.Generator().manual_seed(ctx.seed + 21))
    reachable = grid.norm(dim=-1) <= float(chain.forward(qs).position.norm(dim=-1).max())
    q1 = model.sample(grid, None, 1, generator=torch.Generator().manual_seed(ctx.seed + 4)).q.double()
    pe_grid, _ = errors(chain, q1, grid, None)
    E = np.where(reachable.numpy(), pe_grid[:, 0].numpy() * 1e3, np.nan).reshape(n, n)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.pcolormesh(X, Z, np.log10(np.maximum(E, 1e-4)), shading="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label="log10 position error [mm]")
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("z [m]")
    ax.set_title(f"{POSITION_MODEL} error, plane y = 0 (model alone)")
    return save_figure(ctx, fig, "ur3_position_cross_section.png"), summarize(torch.tensor(E[np.isfinite(E)]))


def template_values(r: UR3PositionResult) -> dict[str, str]:
    """The ``ur3_position`` block's placeholders."""
    rows = []
    for name, m in r.models.items():
        e = m.position_error_mm
        rows.append([name, m.trained_by, e["mean"], e["median"], e["p95"], e["max"], m.success["<=1mm"] * 100, m.success["<=0.1mm"] * 100, m.class_coverage, m.mmd, paper_mean_mm(name)])
    table = md_table(["model", "trained by", "mean mm", "median mm", "p95 mm", "max mm", "≤1 mm %", "≤0.1 mm %", "class coverage", "MMD", "CEMSSL paper mm"], rows)
    def pairs(after_of: dict[str, str]) -> list[str]:
        out = []
        for b, f in after_of.items():
            if b in r.models and f in r.models:
                before, after = r.models[b].position_error_mm["mean"], r.models[f].position_error_mm["mean"]
                out.append(f"{b} {before:.1f} -> {f} {after:.2f} mm ({before / after:.0f}x; class coverage {r.models[b].class_coverage:.2f} -> {r.models[f].class_coverage:.2f})")
        return out

    best = min(r.models, key=lambda k: r.models[k].position_error_mm["mean"])
    return {
        "num_targets": str(r.num_targets),
        "reference_orientations": str(r.reference_orientations),
        "diversity_samples": str(r.diversity_samples),
        "diversity_targets": str(r.diversity_targets),
        "mmd_noise_floor": f"{r.mmd_noise_floor:.2g}",
        "table": table,
        "finetune": "; ".join(pairs(FINETUNED)) or "-",
        "residual": "; ".join(pairs(RESIDUAL)),
        "paper_finetuned_mm": f"{CEMSSL_FINETUNED_MM}",
        "best_name": best,
        "best_mean_mm": f"{r.models[best].position_error_mm['mean']:.4f}",
        "best_coverage": f"{r.models[best].class_coverage:.2f}",
        "best_mmd": f"{r.models[best].mmd:.2f}",
        **{f"figure_{k}": v for k, v in r.figures.items()},
    }
