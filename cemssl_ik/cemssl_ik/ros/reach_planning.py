"""Reaching a pose through one of many IK solutions: the planning logic of ``moveit_reach_node``.

The node asks the IK service for K solutions of a target pose, and plans to them one after
another, nearest first, until a plan is found (an obstacle may block the nearest solutions: the
papers' motivating case for multi-solution IK).  The logic lives here as plain functions over
callables, so it is tested without MoveIt; the node supplies moveit_py's collision check, planner
and executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

__all__ = ["Candidate", "PlanOutcome", "Attempt", "ReachResult", "order_candidates", "reach"]


@dataclass(frozen=True)
class Candidate:
    """One IK solution to plan to.

    Attributes:
        index: its position in the service's answer.
        q: (dof,) joint values, radians / metres.
        distance: weighted joint-space distance to the current state.
        branch: configuration class from the service (255 = none).
    """

    index: int
    q: np.ndarray
    distance: float
    branch: int = 255


@dataclass(frozen=True)
class PlanOutcome:
    """What a planner returned for one goal: ``plan`` is opaque to this module (a trajectory)."""

    ok: bool
    plan: object = None
    reason: str = ""


@dataclass(frozen=True)
class Attempt:
    """One candidate tried: ``stage`` is 'collision', 'plan' or 'execute'."""

    index: int
    stage: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class ReachResult:
    """Outcome of :func:`reach`.

    Attributes:
        success: a plan was found (and executed, unless planning only).
        chosen: the candidate that was planned to (None on failure).
        plan: the planner's plan for it (None on failure).
        executed: the plan was sent to the robot and finished successfully.
        attempts: every candidate tried, in order, with why it was passed over.
        message: one line for a log or a client.
    """

    success: bool
    chosen: Candidate | None
    plan: object
    executed: bool
    attempts: list[Attempt] = field(default_factory=list)
    message: str = ""


def order_candidates(
    solutions: np.ndarray,
    current: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    branches: Sequence[int] | None = None,
) -> list[Candidate]:
    """IK solutions as candidates, nearest to the current state first.

    Args:
        solutions: (K, dof) joint values.
        current: (dof,) the robot's joint values now.
        lower, upper: (dof,) joint limits; solutions outside them (or non-finite) are dropped.
        weights: (dof,) per-joint weights of the distance (e.g. larger for the heavy shoulder
            joints); default 1.
        branches: (K,) configuration classes, carried along.

    Returns:
        Candidates sorted by weighted Euclidean joint distance (stable for ties).

    Raises:
        ValueError: shapes that do not match.
    """
    solutions = np.asarray(solutions, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    if solutions.ndim != 2 or current.shape != (solutions.shape[1],):
        raise ValueError(f"solutions must be (K, dof) and current (dof,), got {solutions.shape} and {current.shape}")
    if not np.all(np.isfinite(current)):
        raise ValueError(f"current joint state must be finite, got {current.tolist()}")
    dof = solutions.shape[1]
    w = np.ones(dof) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (dof,) or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be {dof} finite values >= 0, got {w.tolist()}")
    keep = np.all(np.isfinite(solutions), axis=1)
    if lower is not None:
        keep &= np.all(solutions >= np.asarray(lower) - 1e-9, axis=1)
    if upper is not None:
        keep &= np.all(solutions <= np.asarray(upper) + 1e-9, axis=1)
    dist = np.sqrt((((solutions - current) * w) ** 2).sum(-1))
    order = [int(i) for i in np.argsort(dist, kind="stable") if keep[i]]
    br = list(branches) if branches is not None else [255] * len(solutions)
    return [Candidate(i, solutions[i].copy(), float(dist[i]), int(br[i])) for i in order]


def reach(
    candidates: Sequence[Candidate],
    plan: Callable[[np.ndarray], PlanOutcome],
    in_collision: Callable[[np.ndarray], bool] | None = None,
    execute: Callable[[object], bool] | None = None,
    max_attempts: int = 8,
) -> ReachResult:
    """Plan to the candidates in order; execute the first plan found.

    A candidate in collision is skipped without planning; a failed plan moves on to the next
    candidate.  A failed execution ends the search: the robot may have moved part of the way, so
    the next plan would start from a state it was not planned from.

    Args:
        candidates: from :func:`order_candidates`.
        plan: goal (dof,) -> PlanOutcome (the planner starts from the current state).
        in_collision: goal (dof,) -> True if the goal state collides (checked before planning).
        execute: plan -> True on success; None plans only.
        max_attempts: candidates planned to at most (collision checks do not count).

    Returns:
        The :class:`ReachResult`; ``message`` says why each candidate was passed over on failure.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    attempts: list[Attempt] = []
    planned = 0
    for c in candidates:
        if in_collision is not None and in_collision(c.q):
            attempts.append(Attempt(c.index, "collision", False, "goal state in collision"))
            continue
        if planned >= max_attempts:
            break
        planned += 1
        outcome = plan(c.q)
        attempts.append(Attempt(c.index, "plan", outcome.ok, outcome.reason))
        if not outcome.ok:
            continue
        if execute is None:
            return ReachResult(True, c, outcome.plan, False, attempts, f"planned to solution {c.index} (distance {c.distance:.3f}) after {len(attempts)} attempt(s)")
        ok = bool(execute(outcome.plan))
        attempts.append(Attempt(c.index, "execute", ok, "" if ok else "execution failed"))
        if ok:
            return ReachResult(True, c, outcome.plan, True, attempts, f"reached solution {c.index} (distance {c.distance:.3f}) after {len(attempts) - 1} attempt(s)")
        return ReachResult(False, c, outcome.plan, False, attempts, f"execution of the plan to solution {c.index} failed; not trying others from an unknown state")
    if not candidates:
        return ReachResult(False, None, None, False, attempts, "no IK solution within the joint limits to plan to")
    skipped = sum(a.stage == "collision" for a in attempts)
    failed = sum(a.stage == "plan" for a in attempts)
    return ReachResult(False, None, None, False, attempts, f"no plan: {skipped} solution(s) in collision, {failed} planning failure(s), {len(candidates)} candidate(s)")
