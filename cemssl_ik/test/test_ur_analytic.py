"""Closed-form UR3 IK: round trips, completeness against ur-analytic-ik, singularities, frames, branches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from cemssl_ik.kinematics import URAnalyticIK, load_robot, rotation_angle, ur_branch_ids, wrap_to_pi


@pytest.fixture(scope="module")
def chain_base():
    return load_robot("ur3", base_link="base")


def _roundtrip_errors(chain, res, position, rotation):
    sols = torch.nan_to_num(res.solutions)
    fk = chain.forward(sols)
    pos_err = (fk.position - position[:, None]).norm(dim=-1)
    rot_err = rotation_angle(fk.rotation, rotation[:, None].expand_as(fk.rotation))
    zero = torch.zeros_like(pos_err)
    return torch.where(res.valid, pos_err, zero), torch.where(res.valid, rot_err, zero)


def test_random_poses_round_trip_and_contain_the_generating_configuration(chain_base):
    q = chain_base.sample_configurations(5000, torch.Generator().manual_seed(10))
    fk = chain_base.forward(q)
    res = URAnalyticIK("ur3").solve(fk.position, fk.rotation)
    assert res.solutions.shape == (5000, 8, 6) and res.valid.shape == (5000, 8)
    pos_err, rot_err = _roundtrip_errors(chain_base, res, fk.position, fk.rotation)
    assert pos_err.max() <= 1e-9
    assert rot_err.max() <= 1e-8
    assert res.valid.sum(1).min() >= 2  # a reachable pose has at least two branches
    diff = wrap_to_pi(res.solutions - q[:, None]).abs().amax(-1)
    found = torch.where(res.valid, diff, torch.full_like(diff, math.inf)).min(1).values
    assert (found < 1e-4).float().mean() > 0.999  # the rest sit at near-singular configurations
    # solutions are within one period and have the branch their index says
    valid_sols = res.solutions[res.valid]
    assert valid_sols.abs().max() <= math.pi
    idx = torch.arange(8).expand(5000, 8)[res.valid]
    assert (ur_branch_ids(valid_sols) == idx).float().mean() > 0.999


def test_solution_count_matches_ur_analytic_ik(chain_base):
    ur_analytic_ik = pytest.importorskip("ur_analytic_ik")
    q = chain_base.sample_configurations(1000, torch.Generator().manual_seed(11))
    fk = chain_base.forward(q)
    res = URAnalyticIK("ur3").solve(fk.position, fk.rotation)
    T = np.zeros((1000, 4, 4))
    T[:, :3, :3], T[:, :3, 3], T[:, 3, 3] = fk.rotation.numpy(), fk.position.numpy(), 1.0
    ref_counts = np.array([len(ur_analytic_ik.ur3.inverse_kinematics(np.ascontiguousarray(t))) for t in T])
    assert np.mean(np.abs(res.valid.sum(1).numpy() - ref_counts)) < 0.01


@pytest.mark.parametrize(
    "q",
    [
        [0.3, -1.2, 1.0, -0.5, 0.0, 0.7],  # wrist singularity: wrist_2 = 0 (axes 4 and 6 aligned)
        [0.3, -1.2, 1.0, -0.5, math.pi, 0.7],  # wrist singularity at pi
        [0.2, -1.0, 0.0, -1.0, 1.1, 0.3],  # elbow fully stretched
        [-0.4, -0.8, 1.3, 0.2, -1.3, 2.0],  # regular, for contrast
    ],
)
def test_singular_configurations_still_round_trip(chain_base, q):
    qt = torch.tensor([q], dtype=torch.float64)
    fk = chain_base.forward(qt)
    res = URAnalyticIK("ur3").solve(fk.position, fk.rotation)
    assert res.valid.any()
    pos_err, rot_err = _roundtrip_errors(chain_base, res, fk.position, fk.rotation)
    assert pos_err.max() <= 1e-9 and rot_err.max() <= 1e-7


def test_shoulder_singularity_wrist_centre_on_the_shoulder_cylinder(chain_base):
    # Place the wrist-2 centre at exactly radius d4 from the base z axis: the two pan branches merge.
    d4 = 0.11235
    ik = URAnalyticIK("ur3")
    R = torch.eye(3, dtype=torch.float64)[None]
    p05 = torch.tensor([[d4, 0.0, 0.2]], dtype=torch.float64)
    position = p05 + 0.0819 * R[:, :, 2]
    res = ik.solve(position, R)
    assert res.valid.any()
    pos_err, rot_err = _roundtrip_errors(chain_base, res, position, R)
    assert pos_err.max() <= 1e-9 and rot_err.max() <= 1e-8


def test_unreachable_pose_has_no_solution():
    res = URAnalyticIK("ur3").solve(torch.tensor([[2.0, 0.0, 0.3]], dtype=torch.float64), torch.eye(3, dtype=torch.float64)[None])
    assert not res.valid.any()
    assert torch.isnan(res.solutions).all()


def test_base_link_frame_requests():
    chain = load_robot("ur3")  # base_link -> tool0
    q = chain.sample_configurations(200, torch.Generator().manual_seed(12))
    fk = chain.forward(q)
    res = URAnalyticIK("ur3").solve(fk.position, fk.rotation, frame="base_link")
    pos_err, rot_err = _roundtrip_errors(chain, res, fk.position, fk.rotation)
    assert res.valid.any(1).all() and pos_err.max() <= 1e-9 and rot_err.max() <= 1e-8
    with pytest.raises(ValueError, match="frame"):
        URAnalyticIK("ur3").solve(fk.position, fk.rotation, frame="world")
    with pytest.raises(ValueError, match="unknown UR model"):
        URAnalyticIK("ur99")


def test_dh_forward_matches_urdf(chain_base):
    q = chain_base.sample_configurations(100, torch.Generator().manual_seed(13))
    T = URAnalyticIK("ur3").forward(q)
    fk = chain_base.forward(q)
    assert (T[:, :3, 3] - fk.position).abs().max() < 1e-9
