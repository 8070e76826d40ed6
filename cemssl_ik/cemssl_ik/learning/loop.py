"""The step loop shared by the supervised and unsupervised trainers."""

from __future__ import annotations

import time
from typing import Callable

import torch

from .schedule import cosine_lr, flush_denormals, progress
from .targets import sample_targets

__all__ = ["StepTrainer"]


class StepTrainer:
    """Base of trainers that run ``config.steps`` optimizer steps with periodic held-out evaluation.

    Subclasses set ``model``, ``chain``, ``config`` (with steps, lr, lr_final, eval_every,
    max_seconds, seed) and implement :meth:`step`, which returns a dict of scalar losses.
    """

    step_count: int = 0
    _started: float | None = None

    def current_progress(self) -> float:
        """Fraction of the run done, by steps or by the time budget (see :func:`~.schedule.progress`)."""
        c = self.config
        return progress(self.step_count, c.steps, self._started, c.max_seconds)

    def current_lr(self) -> float:
        c = self.config
        return cosine_lr(c.lr, c.lr_final, self.current_progress())

    def step(self) -> dict[str, float]:
        raise NotImplementedError

    def run(self, callback: Callable[[int, dict, float | None], None] | None = None) -> str:
        """Step until ``steps`` or the time budget; returns the stop reason. callback(step, losses, eval error or None)."""
        with flush_denormals():
            return self._run(callback)

    def _run(self, callback: Callable[[int, dict, float | None], None] | None) -> str:
        from ..evaluation.precision import evaluate_precision

        c = self.config
        start = self._started = time.perf_counter()
        eval_targets = sample_targets(self.chain, 1000, torch.Generator().manual_seed(c.seed + 7919))
        while self.step_count < c.steps:
            info = self.step()
            self.step_count += 1
            err = None
            if c.eval_every and (self.step_count % c.eval_every == 0 or self.step_count == c.steps):
                err = float(evaluate_precision(self.model, self.chain, targets=eval_targets, seed=c.seed + 1).position_error.mean())
                self.history.append({"step": self.step_count, **info, "eval_error_mean": err})
            if callback is not None:
                callback(self.step_count, info, err)
            if c.max_seconds and time.perf_counter() - start > c.max_seconds:
                return "time budget"
        return "steps"
