"""moveit_reach_node's planning logic as plain functions: ordering, fallbacks, error reporting."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cemssl_ik.ros.reach_planning import PlanOutcome, order_candidates, reach

CURRENT = np.zeros(6)
SOLUTIONS = np.array(
    [
        [3.0, 0, 0, 0, 0, 0],  # far
        [0.5, 0, 0, 0, 0, 0],  # nearest
        [0, 0, 9.0, 0, 0, 0],  # outside the elbow limit
        [1.0, 0, 0, 0, 0, 0],
        [np.nan, 0, 0, 0, 0, 0],  # broken
    ]
)
LOWER, UPPER = np.full(6, -2 * np.pi), np.array([2 * np.pi, 2 * np.pi, np.pi, 2 * np.pi, 2 * np.pi, 2 * np.pi])


def test_candidates_are_ordered_by_joint_distance_within_limits():
    cands = order_candidates(SOLUTIONS, CURRENT, LOWER, UPPER, branches=[1, 2, 3, 4, 5])
    assert [c.index for c in cands] == [1, 3, 0]
    assert [c.branch for c in cands] == [2, 4, 1]
    assert cands[0].distance == pytest.approx(0.5)
    # weights change the order: a cheap first joint makes the far pan move nearer than a wrist move
    sols = np.array([[0, 0, 0, 0, 0, 1.0], [2.0, 0, 0, 0, 0, 0]])
    assert [c.index for c in order_candidates(sols, CURRENT)] == [0, 1]
    assert [c.index for c in order_candidates(sols, CURRENT, weights=np.array([0.1, 1, 1, 1, 1, 1]))] == [1, 0]
    with pytest.raises(ValueError, match="current"):
        order_candidates(SOLUTIONS, np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        order_candidates(SOLUTIONS, np.full(6, np.nan))


def test_reach_skips_blocked_solutions_and_plans_to_the_next():
    cands = order_candidates(SOLUTIONS, CURRENT, LOWER, UPPER)
    planned, executed = [], []

    def in_collision(q):  # the obstacle blocks the nearest solution
        return q[0] == 0.5

    def plan(q):
        planned.append(q[0])
        return PlanOutcome(q[0] != 1.0, plan=f"traj-{q[0]}", reason="no path" if q[0] == 1.0 else "")

    result = reach(cands, plan, in_collision, execute=lambda p: executed.append(p) or True)
    assert result.success and result.executed and result.chosen.index == 0
    assert planned == [1.0, 3.0] and executed == ["traj-3.0"]
    assert [(a.index, a.stage, a.ok) for a in result.attempts] == [(1, "collision", False), (3, "plan", False), (0, "plan", True), (0, "execute", True)]


def test_reach_reports_why_it_failed():
    cands = order_candidates(SOLUTIONS, CURRENT, LOWER, UPPER)
    result = reach(cands, lambda q: PlanOutcome(False, reason="timeout"), lambda q: q[0] == 0.5)
    assert not result.success and result.chosen is None
    assert "1 solution(s) in collision, 2 planning failure(s)" in result.message
    assert reach([], lambda q: PlanOutcome(True)).message.startswith("no IK solution")
    # max_attempts bounds the planner calls, not the collision checks
    calls = []
    reach(cands, lambda q: calls.append(q) or PlanOutcome(False), max_attempts=1)
    assert len(calls) == 1
    with pytest.raises(ValueError):
        reach(cands, lambda q: PlanOutcome(True), max_attempts=0)


def test_failed_execution_stops_the_search():
    cands = order_candidates(SOLUTIONS, CURRENT, LOWER, UPPER)
    plans = []
    result = reach(cands, lambda q: plans.append(q) or PlanOutcome(True, plan="t"), execute=lambda p: False)
    assert not result.success and len(plans) == 1 and "execution" in result.message


def test_plan_only_returns_the_plan_without_executing():
    cands = order_candidates(SOLUTIONS, CURRENT, LOWER, UPPER)
    result = reach(cands, lambda q: PlanOutcome(True, plan="t"))
    assert result.success and not result.executed and result.plan == "t" and result.chosen.index == 1


def test_result_json():
    from cemssl_ik.ros.moveit_reach_node import result_to_json

    cands = order_candidates(SOLUTIONS, CURRENT, LOWER, UPPER)
    data = json.loads(result_to_json(reach(cands, lambda q: PlanOutcome(True, plan="t")), "base_link"))
    assert data["success"] and data["chosen"]["index"] == 1 and data["frame"] == "base_link"
    assert data["attempts"] == [{"index": 1, "stage": "plan", "ok": True, "reason": ""}]
