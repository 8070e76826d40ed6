"""Models the report trains itself (EMSSL, planar and artificial sections): one recipe per method
(:mod:`cemssl_ik.learning.recipe`), run by :func:`~cemssl_ik.learning.pipeline.train_model` for a
fixed wall-time budget, with the held-out learning curve it reports."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ...kinematics.chain import KinematicChain
from ...learning.pipeline import TrainOptions, train_model
from ...learning.recipe import PHASE_KINDS, Phase, Recipe
from ...models import ModelConfig
from ...models.generators import IKGenerator
from .base import Context

__all__ = ["METHODS", "recipe_for", "train"]

#: report method -> (model method, phase kind): emssl is CEMSSL with no latent and one member,
#: regression a plain MLP trained on FK samples, distal / unsupervised the FK loss
METHODS = {
    "cemssl": ("cemssl", "cemssl"),
    "emssl": ("emssl", "cemssl"),
    "regression": ("emssl", "pretrain"),
    "distal": ("emssl", "fkloss"),
    "unsupervised": ("emssl", "fkloss"),
    "cvae": ("cvae", "pretrain"),
    "cgan": ("cgan", "pretrain"),
    "cinn": ("cinn", "pretrain"),
}
#: CEMSSL fields the report sets (the EMSSL paper's Table I settings at a CPU-sized iteration:
#: short iterations so that a 75 s budget holds several evaluations); every other field, and
#: every field of the other phase kinds, keeps its dataclass default
CEMSSL_FIELDS = {"epochs": 5, "inference_batch": 2048, "lr_final": 1e-5}


def recipe_for(ctx: Context, chain: KinematicChain, method: str, target: str, seconds: float, output: str | None = None, seed: int = 0) -> Recipe:
    """The one-phase recipe of ``method`` (a key of :data:`METHODS`) under the run's scale:
    stopped by ``seconds`` of wall time, evaluated often enough to draw a learning curve."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {sorted(METHODS)}")
    s = ctx.scale
    quick = s.name == "quick"
    model_method, kind = METHODS[method]
    model = ModelConfig(
        method=model_method, target=target,
        latent_dim=0 if model_method == "emssl" else (chain.dof if model_method == "cinn" else 6),
        members=s.members if method == "cemssl" else 1, hidden=s.hidden,
        output=output or ("sigmoid" if model_method == "cinn" else "biternion"),
        coupling_blocks=4 if quick else 6, coupling_hidden=64 if quick else 256,
    )
    if kind == "cemssl":
        fields = {**CEMSSL_FIELDS, "iterations": 100_000, "samples_per_iteration": 256 if quick else 2048, "eval_every": 2 if quick else 5, "eval_targets": 200 if quick else 500}
    else:
        fields = {"steps": 1_000_000, "eval_every": 50 if quick else 500}
    config = PHASE_KINDS[kind].config(**fields, max_seconds=seconds, seed=seed)
    return Recipe(name=f"report_{method}_{chain.name}_{target}", phases=[Phase(kind, config)], robot=chain.name, model=model, seed=seed)


def train(ctx: Context, chain: KinematicChain, method: str, target: str, seconds: float, *, output: str | None = None, seed: int = 0) -> tuple[IKGenerator, dict]:
    """Train one model of ``method`` for ``seconds`` of wall time (its checkpoint goes to a
    temporary folder). Returns the model in eval mode and ``{"seconds", "curve": [(seconds,
    held-out mean error m)], "config"}``."""
    recipe = recipe_for(ctx, chain, method, target, seconds, output, seed)
    curve: list[tuple[float, float]] = []
    t0 = time.perf_counter()

    def note(kind: str, info: dict) -> None:
        if info.get("eval_error_mean") is not None:
            curve.append((time.perf_counter() - t0, float(info["eval_error_mean"])))

    with tempfile.TemporaryDirectory(prefix="cemssl_report_") as tmp:
        result = train_model(chain, recipe, TrainOptions(out=Path(tmp) / recipe.name, command="cemssl-ik bench report"), note)
    model = result.model.eval()
    return model, {"seconds": time.perf_counter() - t0, "curve": curve, "config": recipe.to_dict()}
