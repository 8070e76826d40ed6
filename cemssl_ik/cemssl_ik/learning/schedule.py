"""Optimizer and learning-rate schedule shared by the trainers: Adam (fused kernels where torch has
them for the device), cosine decay over steps or over a time budget."""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["adam", "cosine_lr", "flush_denormals", "progress", "weight_average"]


def progress(done: int, total: int, started: float | None, max_seconds: float) -> float:
    """Fraction of the run completed, in [0, 1]: by steps, or by wall time when a budget is set
    and it runs out first, so that a time-limited run still ends at its final learning rate."""
    frac = done / max(1, total - 1)
    if max_seconds and started is not None:
        frac = max(frac, (time.perf_counter() - started) / max_seconds)
    return min(1.0, frac)


def cosine_lr(lr: float, lr_final: float, frac: float) -> float:
    """Cosine interpolation from ``lr`` (frac = 0) to ``lr_final`` (frac = 1)."""
    return lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * min(1.0, max(0.0, frac))))


def adam(params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with torch's fused kernel where the device supports it (CPU and CUDA: one pass over all
    parameters instead of a dozen elementwise operations each; the UR3 ensemble's FK-loss step runs
    ~20 % faster on this CPU), the default implementation elsewhere.  Same update rule either way.

    ``weight_decay`` > 0 gives AdamW (decoupled decay: each step also shrinks every weight by
    ``lr * weight_decay`` of itself, independent of the gradient's scale).

    ``eps`` is added to the root of Adam's squared-gradient average.  Adam is invariant to the
    loss's scale only while the gradients are well above it: a precise IK model's FK loss is in
    m^2 (2e-9 at 0.03 mm) and most of its gradients are then 1e-12 to 1e-8, where torch's default
    1e-8 dominates the denominator and shrinks the updates.  ``--adam-eps`` sets it for the
    FK-loss and CEMSSL trainers (default torch's; measurements in docs/lab-notes.md)."""
    params = list(params)
    cls, kw = (torch.optim.AdamW, {"weight_decay": weight_decay}) if weight_decay else (torch.optim.Adam, {})
    try:
        return cls(params, lr=lr, betas=betas, eps=eps, fused=True, **kw)
    except (RuntimeError, ValueError):  # device or dtype without fused kernels
        return cls(params, lr=lr, betas=betas, eps=eps, **kw)


def weight_average(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s parameters (Polyak averaging), updated by
    ``update_parameters(model)`` after each optimizer step: each weight's average moves ``1 - decay``
    of the way to its new value, so it averages about the last ``1 / (1 - decay)`` steps.

    Stochastic gradient steps leave the weights jittering about the minimum at the scale of the
    learning rate; their average sits closer to it (measurements in docs/lab-notes.md)."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"the averaging decay must be in (0, 1), got {decay}")
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


_flush_state = threading.local()  # the setting is per thread, so is its nesting depth


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush subnormal floats to zero on the CPU while training (re-entrant; restores the default).

    As a model converges, many gradients and Adam's squared-gradient averages fall below float32's
    smallest normal number (1.2e-38).  Arithmetic on such subnormals is many times slower on x86:
    one CEMSSL iteration of the UR3 CGAN fine-tune took 12.5 s of training with them and 1.8 s
    flushed.  Values that small carry nothing a step could use.  torch applies the setting to the
    calling thread, which is where a one-thread training computes.  Worker threads of torch's
    intra-op pool inherit the setting of the thread that starts them (at the first parallel
    operation), so a multi-thread training must flush before that: ``cemssl-ik train`` does so at
    its start, for the whole process."""
    depth = getattr(_flush_state, "depth", 0)
    if depth == 0:
        torch.set_flush_denormal(True)
    _flush_state.depth = depth + 1
    try:
        yield
    finally:
        _flush_state.depth -= 1
        if _flush_state.depth == 0:
            torch.set_flush_denormal(False)
