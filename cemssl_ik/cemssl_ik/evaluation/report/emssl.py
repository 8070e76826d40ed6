"""Section ``emssl``: EMSSL paper (Qu et al.) Table II and III analogs.

Table II: UR3 position-only with every joint limited to +-90 deg or +-180 deg; EMSSL, direct
regression, distal (FK-loss) learning and CGAN, each trained here for the same wall time.
Table III: the time to collect one iteration's data with no acceleration, batch inference, a
vectorized forward model, or both (:mod:`..bench_sampling`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ...kinematics import load_robot
from ...learning.targets import EVAL_SEED_OFFSET, sample_targets
from ...models import ModelConfig, new_model
from ..bench_sampling import run_sampling_benchmark
from ..precision import evaluate_precision, summarize
from .base import Context, SectionResult, md_table, pyplot, save_figure, with_limits
from .papers import EMSSL_TABLE_II_MM, EMSSL_TABLE_III_S
from .training import train

__all__ = ["EMSSLResult", "TableIIRow", "TableIIIRow", "run", "template_values"]

METHODS = ("emssl", "regression", "distal", "cgan")
RANGES_DEG = (90, 180)


@dataclass
class TableIIRow(SectionResult):
    joint_range_deg: int
    method: str
    position_error_mm: dict[str, float]
    in_limits_fraction: float
    train_seconds: float
    paper_mm: float | None = None


@dataclass
class TableIIIRow(SectionResult):
    strategy: str
    samples: int
    inference_seconds: float
    forward_seconds: float
    total_seconds: float
    paper_seconds: float | None = None


@dataclass
class EMSSLResult(SectionResult):
    table_ii: list[TableIIRow]
    table_iii: list[TableIIIRow]
    train_seconds_each: float
    figures: dict[str, str] = field(default_factory=dict)


def run(ctx: Context) -> EMSSLResult:
    s = ctx.scale
    ur3 = load_robot("ur3")
    rows, curves = [], {}
    for deg in RANGES_DEG:
        chain = with_limits(ur3, math.radians(deg), f"ur3_pm{deg}")
        targets = sample_targets(chain, s.trained_eval_targets, torch.Generator().manual_seed(ctx.seed + EVAL_SEED_OFFSET))
        for method in METHODS:
            model, info = train(ctx, chain, method, "position", s.train_seconds, output="sigmoid", seed=ctx.seed)
            rep = evaluate_precision(model, chain, targets=targets, seed=ctx.seed)
            err = summarize(rep.position_error.flatten() * 1e3)
            rows.append(TableIIRow(deg, method, err, float(rep.in_limits.double().mean()), info["seconds"], EMSSL_TABLE_II_MM.get((method, deg))))
            curves[f"{method} ±{deg}°"] = info["curve"]
            ctx.log(f"  ±{deg}° {method}: mean {err['mean']:.2f} mm ({info['seconds']:.0f} s)")
    # an untrained model of the CEMSSL paper's size: the sampling time does not depend on the weights
    model = new_model(ur3, ModelConfig(latent_dim=6, members=6, hidden=(1024, 512, 256, 128)))
    sampling = [TableIIIRow(**r, paper_seconds=EMSSL_TABLE_III_S[r["strategy"]]) for r in run_sampling_benchmark(model, ur3, s.sampling_samples, 512, seed=ctx.seed)]
    return EMSSLResult(rows, sampling, s.train_seconds, {"curves": _curves_figure(ctx, curves)})


def _curves_figure(ctx: Context, curves: dict[str, list[tuple[float, float]]]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, c in curves.items():
        if c:
            t, e = zip(*c)
            ax.plot(t, np.asarray(e) * 1e3, label=label, ls="-" if "180" in label else "--")
    ax.set_yscale("log")
    ax.set_xlabel("training time [s]")
    ax.set_ylabel("held-out mean position error [mm]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Learning curves (UR3 position-only)")
    return save_figure(ctx, fig, "emssl_learning_curves.png")


def template_values(r: EMSSLResult) -> dict[str, str]:
    """The ``emssl`` block's placeholders (the papers' columns from :mod:`.papers`, not the stored rows)."""
    t2 = [[f"±{x.joint_range_deg}°", x.method, x.position_error_mm["mean"], x.position_error_mm["median"], x.position_error_mm["p95"], x.in_limits_fraction * 100, x.train_seconds, EMSSL_TABLE_II_MM.get((x.method, x.joint_range_deg))] for x in r.table_ii]
    none = r.table_iii[0].total_seconds
    paper_none = EMSSL_TABLE_III_S["none"]
    t3 = [[x.strategy, x.samples, x.inference_seconds, x.forward_seconds, x.total_seconds, none / x.total_seconds, EMSSL_TABLE_III_S[x.strategy], paper_none / EMSSL_TABLE_III_S[x.strategy]] for x in r.table_iii]
    by = {(x.method, x.joint_range_deg): x.position_error_mm["mean"] for x in r.table_ii}
    lowest = {deg: min((m for m, d in by if d == deg), key=lambda m: by[(m, deg)]) for deg in RANGES_DEG if any(d == deg for _, d in by)}
    return {
        "train_seconds": f"{r.train_seconds_each:.0f}",
        "table_ii": md_table(["joints", "method", "mean mm", "median mm", "p95 mm", "in limits %", "train s", "EMSSL paper mm"], t2),
        "lowest": "; ".join(f"±{deg}°: {m} ({by[(m, deg)]:.1f} mm)" for deg, m in lowest.items()),
        "table_iii": md_table(["strategy", "samples", "inference s", "forward s", "total s", "speed-up", "EMSSL paper s", "paper speed-up"], t3),
        "speedup": f"{none / r.table_iii[-1].total_seconds:.1f}",
        "paper_none_s": f"{paper_none:.2f}",
        "paper_both_s": f"{EMSSL_TABLE_III_S['both']:.2f}",
        "paper_speedup": f"{paper_none / EMSSL_TABLE_III_S['both']:.1f}",
        "figure_curves": r.figures["curves"],
    }
