"""Models the report trains itself (EMSSL, planar and artificial sections): one per method, for a
fixed wall-time budget, with its learning curve."""

from __future__ import annotations

import dataclasses
import time

import torch

from ...kinematics.chain import KinematicChain
from ...models import ModelConfig, new_model
from ...models.generators import IKGenerator
from .base import Context

__all__ = ["METHODS", "train"]

#: method -> the model's method; emssl is CEMSSL with no latent and one member, regression is
#: supervised MSE, distal / unsupervised is the FK loss
METHODS = {"cemssl": "cemssl", "emssl": "emssl", "regression": "emssl", "distal": "emssl", "unsupervised": "emssl", "cvae": "cvae", "cgan": "cgan", "cinn": "cinn"}
_NO_LATENT = ("emssl", "regression", "distal", "unsupervised")


def _model(ctx: Context, chain: KinematicChain, method: str, target: str, output: str | None, seed: int) -> IKGenerator:
    s = ctx.scale
    quick = s.name == "quick"
    latent_dim = 0 if method in _NO_LATENT else (chain.dof if method == "cinn" else 6)
    output = output or ("sigmoid" if method == "cinn" else "biternion")
    members = s.members if method == "cemssl" else 1
    cfg = ModelConfig(
        method=METHODS[method], target=target, latent_dim=latent_dim, members=members, hidden=s.hidden, output=output,
        coupling_blocks=4 if quick else 6, coupling_hidden=64 if quick else 256,
    )
    torch.manual_seed(seed)
    return new_model(chain, cfg)


def train(ctx: Context, chain: KinematicChain, method: str, target: str, seconds: float, *, output: str | None = None, seed: int = 0) -> tuple[IKGenerator, dict]:
    """Train one model of ``method`` (a key of :data:`METHODS`) for ``seconds`` of wall time.

    Returns the model (in eval mode) and ``{"seconds", "curve": [(seconds, held-out mean error m)], "config"}``.
    """
    from ...learning.cemssl import CEMSSLConfig, CEMSSLTrainer
    from ...learning.supervised import SupervisedConfig, SupervisedTrainer
    from ...learning.unsupervised import UnsupervisedConfig, UnsupervisedTrainer

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {sorted(METHODS)}")
    quick = ctx.scale.name == "quick"
    model = _model(ctx, chain, method, target, output, seed)
    curve: list[tuple[float, float]] = []
    t0 = time.perf_counter()

    def note(err: float | None) -> None:
        if err is not None:
            curve.append((time.perf_counter() - t0, float(err)))

    every = 50 if quick else 500
    if method in ("cemssl", "emssl"):
        c = CEMSSLConfig(
            iterations=100_000, epochs=5, samples_per_iteration=256 if quick else 2048, inference_batch=2048,
            training_batch=128, lr=1.5e-3, lr_final=1e-5, eval_every=2 if quick else 5, eval_targets=200 if quick else 500,
            max_seconds=seconds, seed=seed,
        )
        CEMSSLTrainer(model, chain, c).run(lambda st: note(st.eval_error_mean))
    elif method in ("regression", "cvae", "cgan", "cinn"):
        c = SupervisedConfig(steps=1_000_000, batch_size=256, lr=1e-3, lr_final=1e-5, eval_every=every, max_seconds=seconds, seed=seed)
        SupervisedTrainer(model, chain, c).run(lambda step, info, err: note(err))
    else:
        c = UnsupervisedConfig(steps=1_000_000, batch_size=512, lr=1e-3, lr_final=1e-5, eval_every=every, max_seconds=seconds, seed=seed)
        UnsupervisedTrainer(model, chain, c).run(lambda step, info, err: note(err))
    model.eval()
    return model, {"seconds": time.perf_counter() - t0, "curve": curve, "config": dataclasses.asdict(model.config)}
