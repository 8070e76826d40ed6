"""The step loop shared by the supervised and unsupervised trainers."""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch.optim.swa_utils import AveragedModel

from .heldout import Evaluator, heldout_evaluator
from .schedule import cosine_lr, flush_denormals, progress

__all__ = ["StepTrainer"]


class StepTrainer:
    """Base of trainers that run ``config.steps`` optimizer steps with periodic held-out evaluation.

    Subclasses set ``model``, ``chain``, ``config`` (with steps, lr, lr_final, eval_every,
    max_seconds, seed) and implement :meth:`step`, which returns a dict of scalar losses.

    A subclass that sets ``average`` (a :class:`torch.optim.swa_utils.AveragedModel` of ``model``,
    see :func:`~.schedule.weight_average`) gets the average updated after every step, evaluated
    next to the trained weights, and, at the end, the better of the two on the held-out targets
    copied into ``model`` (``average_result`` records both errors and which was kept).

    Held-out errors come from ``evaluator`` (an :data:`~.heldout.Evaluator`: model -> mean position
    error in metres); left None, the trainer uses :func:`~.heldout.heldout_evaluator` of its chain
    and seed.
    """

    step_count: int = 0
    _started: float | None = None
    average: AveragedModel | None = None
    average_result: dict | None = None
    evaluator: Evaluator | None = None

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
        c = self.config
        start = self._started = time.perf_counter()
        error = self.evaluator or heldout_evaluator(self.chain, c.seed)

        reason = "steps"
        while self.step_count < c.steps:
            info = self.step()
            self.step_count += 1
            if self.average is not None:
                self.average.update_parameters(self.model)
            err = None
            if c.eval_every and (self.step_count % c.eval_every == 0 or self.step_count == c.steps):
                err = error(self.model)
                row = {"step": self.step_count, **info, "eval_error_mean": err}
                if self.average is not None:
                    row["eval_error_mean_average"] = err = error(self.average.module)
                self.history.append(row)
            if callback is not None:
                callback(self.step_count, info, err)
            if c.max_seconds and time.perf_counter() - start > c.max_seconds:
                reason = "time budget"
                break
        if self.average is not None and self.step_count:
            self._keep_better_of_average(error(self.model), error(self.average.module))
        return reason

    def _keep_better_of_average(self, trained: float, averaged: float) -> None:
        kept = "average" if averaged <= trained else "trained"
        if kept == "average":
            with torch.no_grad():
                for p, a in zip(self.model.parameters(), self.average.module.parameters()):
                    p.copy_(a)
        self.average_result = {"eval_error_mean_trained": trained, "eval_error_mean_average": averaged, "kept": kept}
