"""Many threads' single requests served by batched solve calls (flat combining)."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .core import IKSolver, _as_array
from .options import IKResult, SolverOptions

__all__ = ["RequestBatcher"]


@dataclass
class _Pending:
    position: np.ndarray  # (3,)
    rotation: np.ndarray | None  # (3, 3)
    seed: np.ndarray | None  # (dof,)
    options: SolverOptions
    done: threading.Event = field(default_factory=threading.Event)
    result: IKResult | None = None
    error: BaseException | None = None


def _take(res: IKResult, i: int, timings: dict) -> IKResult:
    return IKResult(res.solutions[i : i + 1], res.valid[i : i + 1], res.position_error[i : i + 1], res.orientation_error[i : i + 1], res.branch[i : i + 1], res.num_valid[i : i + 1], timings)


class RequestBatcher:
    """Serves single-target requests from many threads with batched :meth:`IKSolver.solve` calls.

    The calling threads solve for each other (flat combining): a caller that finds no solve in
    progress takes every queued request, its own included, and solves them in calls of equal
    options (and the same kind: pose or position, with or without seed), repeating until the queue
    is empty; requests that arrive meanwhile wait for that caller to take them.  Under concurrent
    load this replaces many small, overhead-bound solves by a few larger ones, and a lone request
    is solved at once on its own thread (no hand-off to a worker thread; ``max_wait`` = 0).

    Answers of a batched request are as valid, distinct and ranked as those of a lone one; which
    of several equally good solutions come back can depend on what it was batched with (the latent
    draws are shared by the batch).

    Args:
        solver: the solver to call (its model must not change underneath; make a new batcher).
        max_batch: most requests per solve call.
        max_wait: seconds a solving caller waits for more requests before its first call (0: none).
    """

    def __init__(self, solver: IKSolver, max_batch: int = 64, max_wait: float = 0.0) -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError("max_batch must be >= 1 and max_wait >= 0")
        self.solver, self.max_batch, self.max_wait = solver, max_batch, max_wait
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._busy = threading.Lock()  # held by the caller that is solving
        self._closed = False
        self.batches = 0  # solve calls made (statistics)
        self.requests = 0

    def solve_one(self, position, rotation=None, seed=None, options: SolverOptions | None = None, timeout: float | None = None) -> IKResult:
        """Solve one target (position (3,), rotation (3, 3) or None, seed (dof,) or None): a B = 1 result."""
        item = _Pending(
            _as_array(position).reshape(3),
            None if rotation is None else _as_array(rotation).reshape(3, 3),
            None if seed is None else _as_array(seed).reshape(-1),
            options or SolverOptions(),
        )
        if self._closed:  # a caller that raced a model swap: answer it directly
            self._solve_group([item])
        else:
            self._queue.put(item)
            # Whoever holds _busy checks the queue again after releasing it, so an item queued
            # while another caller solves is always taken by someone: either this thread gets
            # the lock, or the holder (or a later one) sees the item after its release.
            while self._busy.acquire(blocking=False):
                try:
                    self._drain()
                finally:
                    self._busy.release()
                if self._queue.empty():
                    break
        if not item.done.wait(timeout):
            raise TimeoutError(f"no answer within {timeout} s")
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def close(self) -> None:
        """Stop batching: later calls are solved directly (queued requests are still answered)."""
        self._closed = True

    def _drain(self) -> None:
        """Solve queued requests until the queue is empty (caller holds ``_busy``)."""
        first = True
        while True:
            items: list[_Pending] = []
            if first and self.max_wait:
                deadline = time.monotonic() + self.max_wait
                while len(items) < self.max_batch:
                    try:
                        items.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
            first = False
            while len(items) < self.max_batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not items:
                return
            groups: dict[tuple, list[_Pending]] = {}
            for it in items:
                key = (tuple(vars(it.options).values()), it.rotation is None, it.seed is None)  # astuple deep-copies: slow
                groups.setdefault(key, []).append(it)
            for group in groups.values():
                self._solve_group(group)

    def _solve_group(self, group: list[_Pending]) -> None:
        try:
            if len(group) == 1:  # a lone request: views, no copies (the common case at low load)
                g = group[0]
                pos, rot, seed = g.position[None], None if g.rotation is None else g.rotation[None], None if g.seed is None else g.seed[None]
            else:
                pos = np.stack([g.position for g in group])
                rot = None if group[0].rotation is None else np.stack([g.rotation for g in group])
                seed = None if group[0].seed is None else np.stack([g.seed for g in group])
            res = self.solver.solve(pos, rot, seed, group[0].options)
            self.batches += 1
            self.requests += len(group)
            res.timings["batch_size"] = len(group)
            if len(group) == 1:
                group[0].result = res
            for i, g in enumerate(group if len(group) > 1 else ()):
                g.result = _take(res, i, res.timings)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            for g in group:
                g.error = exc
        finally:
            for g in group:
                g.done.set()
