"""2*pi-periodic joint copies within real limits."""

from __future__ import annotations

import math

import numpy as np
import torch
from cemssl_ik.kinematics import load_robot, nearest_periodic_copy


def test_nearest_copy_moves_by_whole_turns_towards_the_seed():
    chain = load_robot("ur3")
    q = torch.tensor([[3.0, -3.0, 3.0, 0.1, -0.1, 2.0]], dtype=torch.float64)
    seed = torch.tensor([-3.0, 3.0, -3.0, 6.0, -6.0, -4.0], dtype=torch.float64)
    q_new, within = nearest_periodic_copy(q, seed, chain.lower, chain.upper, chain.periodic)
    two_pi = 2 * math.pi
    # elbow is limited to +-pi: 3.0 - 2*pi = -3.28 is outside, so it keeps 3.0; wrist_1 / wrist_2:
    # 0.1 + 2*pi = 6.38 exceeds the 2*pi limit, so the nearest in-limit copy stays at +-0.1
    expected = [3.0 - two_pi, -3.0 + two_pi, 3.0, 0.1, -0.1, 2.0 - two_pi]
    np.testing.assert_allclose(q_new[0].numpy(), expected, atol=1e-12)
    assert within.all()
    turns = (q_new - q) / two_pi
    assert torch.allclose(turns, turns.round(), atol=1e-12)
    # a seed inside the wrist limits near +2*pi pulls the copy up by one turn
    q_up, _ = nearest_periodic_copy(q, torch.full((6,), 5.0, dtype=torch.float64), chain.lower, chain.upper, chain.periodic)
    assert abs(q_up[0, 3].item() - (0.1 + 0.0)) < 1e-12 and abs(q_up[0, 5].item() - 2.0) < 1e-12 and abs(q_up[0, 4].item() - (-0.1 + two_pi)) < 1e-12


def test_copy_outside_limits_is_flagged_and_nonperiodic_joints_untouched():
    lower, upper = np.array([-1.0, -0.2]), np.array([1.0, 0.2])
    periodic = np.array([True, False])
    q = torch.tensor([[2.5, 0.1], [0.5, 0.3]], dtype=torch.float64)
    q_new, within = nearest_periodic_copy(q, torch.zeros(2, dtype=torch.float64), lower, upper, periodic)
    assert not within[0]  # 2.5 and 2.5 - 2*pi both violate +-1
    assert not within[1]  # prismatic 0.3 > 0.2 cannot wrap
    assert q_new[1, 1] == 0.3 and q_new[1, 0] == 0.5
