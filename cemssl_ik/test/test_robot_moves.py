"""Moving an arm through batches: move order, waypoints under a step bound, settling, UR's base frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cemssl_ik.kinematics import load_robot, matrix_to_quaternion, quaternion_to_matrix
from cemssl_ik.learning.robot_moves import SettleConfig, SettleDetector, order_moves, ur_base_to_base_link, waypoints


def test_order_moves_visits_each_target_once_and_shortens_the_tour():
    rng = np.random.default_rng(0)
    targets = rng.uniform(-3, 3, (40, 6))
    start = np.zeros(6)
    order = order_moves(targets, start)
    assert sorted(order.tolist()) == list(range(40))

    def tour(idx):
        pts = np.concatenate([start[None], targets[idx]])
        return np.abs(np.diff(pts, axis=0)).max(axis=1).sum()

    assert tour(order) < 0.7 * tour(np.arange(40))  # much shorter than the given order
    assert order[0] == int(np.argmin(np.abs(targets - start).max(axis=1)))


def test_waypoints_keep_every_step_within_the_bound_and_end_at_the_target():
    a, b = np.zeros(6), np.array([1.0, -2.05, 0.3, 0, 0, 0])
    pts = waypoints(a, b, 0.5)
    assert len(pts) == 5 and np.allclose(pts[-1], b)
    steps = np.abs(np.diff(np.concatenate([a[None], pts]), axis=0)).max(axis=1)
    assert np.all(steps <= 0.5 + 1e-12)
    assert len(waypoints(a, a + 0.1, 0.5)) == 1
    with pytest.raises(ValueError):
        waypoints(a, b, 0.0)


def test_settle_detector_needs_rest_at_the_target_for_the_hold_time():
    d = SettleDetector(np.zeros(2), SettleConfig(position_tolerance=1e-3, velocity_tolerance=1e-2, hold=0.2))
    assert not d.update(0.0, np.array([0.01, 0.0]))  # not there yet
    assert not d.update(0.1, np.array([0.0005, 0.0]), np.array([0.0, 0.0]))  # there, hold starts
    assert not d.update(0.2, np.array([0.0005, 0.0]), np.array([0.5, 0.0]))  # moving: hold restarts
    assert not d.update(0.3, np.zeros(2), np.zeros(2))
    assert d.update(0.55, np.zeros(2), np.zeros(2))
    assert not SettleDetector(np.zeros(2), SettleConfig()).update(0.0, np.array([np.nan, 0.0]))
    with pytest.raises(ValueError):
        SettleConfig(hold=-1.0)


def test_ur_base_frame_conversion_matches_the_urdf():
    """UR's 'base' frame (the controller's) to base_link: checked against the URDF's own chains."""
    base_link, base = load_robot("ur3"), load_robot("ur3", base_link="base")
    q = base_link.sample_configurations(20, torch.Generator().manual_seed(1))
    a, b = base_link.forward(q), base.forward(q)
    for i in range(20):
        p, quat = ur_base_to_base_link(b.position[i].numpy(), matrix_to_quaternion(b.rotation[i]).numpy())
        assert np.allclose(p, a.position[i].numpy(), atol=1e-12)
        assert np.allclose(quaternion_to_matrix(quat), a.rotation[i].numpy(), atol=1e-12)
