"""Analog of Table III of the EMSSL paper (Qu et al., sampling and training coordination): time to collect one CEMSSL iteration's data four ways.

- ``none``: per-sample model inference and per-sample forward model (a Python loop);
- ``batch``: batched inference, per-sample forward model;
- ``vectorized``: per-sample inference, one vectorized forward-model call;
- ``both``: batched inference and vectorized forward model (what :class:`CEMSSLTrainer` does).
"""

from __future__ import annotations

import time

import torch

from ..kinematics.chain import KinematicChain
from ..learning.targets import sample_targets
from ..models.generators import IKGenerator

__all__ = ["run_sampling_benchmark"]


@torch.no_grad()
def run_sampling_benchmark(model: IKGenerator, chain: KinematicChain, num_samples: int = 2048, inference_batch: int = 512, seed: int = 0) -> list[dict]:
    """Seconds to infer q for ``num_samples`` targets and evaluate FK on them, per strategy."""
    gen = torch.Generator().manual_seed(seed)
    targets = sample_targets(chain, num_samples, gen)
    pose = model.config.target == "pose"
    cond = model.encode_targets(targets.position, targets.rotation if pose else None)  # (N, C)
    z = model.sample_latent(num_samples, generator=gen)
    pos = targets.position.to(model.device)
    model.eval()

    def infer_loop() -> torch.Tensor:
        M = model.num_members
        return torch.cat(
            [model.decode(model.generate(cond[None, i : i + 1].expand(M, 1, -1), z[None, i : i + 1].expand(M, 1, -1)), pos[None, i : i + 1].expand(M, 1, 3))[0] for i in range(num_samples)]
        )

    def infer_batch() -> torch.Tensor:
        M = model.num_members
        outs = [
            model.decode(model.generate(cond[None, s : s + inference_batch].expand(M, -1, -1), z[None, s : s + inference_batch].expand(M, -1, -1)), pos[None, s : s + inference_batch].expand(M, -1, 3))[0]
            for s in range(0, num_samples, inference_batch)
        ]
        return torch.cat(outs)

    def fk_loop(q: torch.Tensor) -> torch.Tensor:
        return torch.stack([chain.forward(q[i]).position for i in range(len(q))])

    def fk_vectorized(q: torch.Tensor) -> torch.Tensor:
        return chain.forward(q).position

    rows = []
    for name, infer, fk in (("none", infer_loop, fk_loop), ("batch", infer_batch, fk_loop), ("vectorized", infer_loop, fk_vectorized), ("both", infer_batch, fk_vectorized)):
        t0 = time.perf_counter()
        q = infer().double()
        t1 = time.perf_counter()
        fk(q)
        t2 = time.perf_counter()
        rows.append({"strategy": name, "samples": num_samples, "inference_seconds": t1 - t0, "forward_seconds": t2 - t1, "total_seconds": t2 - t0})
    return rows
