"""Compiled solver kernels (cemssl_ik.kernels) against the torch reference path and exact expectations."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from cemssl_ik.kinematics import JointSpec, KinematicChain, load_robot
from cemssl_ik.kinematics.limits import nearest_periodic_copy
from cemssl_ik.solver import pose_error, refine

from cemssl_ik import kernels

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install -r requirements.txt)")

# plain LM, as the torch path (valley steps near singularities are tested in test_hard_targets.py)
OPTS = kernels.KernelOptions(give_up_after=8, singular_steps=False)


def _case(chain, n, seed, noise=None):
    g = torch.Generator().manual_seed(seed)
    q_true = chain.sample_configurations(n, g)
    fk = chain.forward(q_true)
    start = chain.sample_configurations(n, g) if noise is None else q_true + noise * torch.randn(q_true.shape, generator=g, dtype=torch.float64)
    return q_true, fk, start


@pytest.mark.parametrize("pose", [True, False])
def test_kernel_matches_torch_refinement_and_reports_true_errors(pose):
    chain = load_robot("ur3")
    _, fk, start = _case(chain, 600, 0)  # random starts: converging, stalling and given-up samples
    rot = fk.rotation if pose else None
    ref = np.zeros((600, 6))
    q, pe, oe, ok = kernels.refine_check(kernels.chain_arrays(chain), start.numpy(), fk.position.numpy(), None if rot is None else rot.numpy(), ref, OPTS)
    # errors reported by the kernel are those of independent torch FK of the returned joints
    pe_t, oe_t = pose_error(chain, torch.from_numpy(q), fk.position, rot)
    assert np.allclose(pe, pe_t.numpy(), rtol=0, atol=1e-12) and np.allclose(oe, oe_t.numpy(), rtol=0, atol=1e-12)
    assert (ok == ((pe <= 1e-6) & (oe <= 1e-5) & chain.within_limits(torch.from_numpy(q)).numpy())).all()
    assert pe[ok].max() <= 1e-9 and oe[ok].max() <= 1e-9
    # same algorithm as the torch path: the same samples converge (floating point may flip a rare one)
    q_t = refine(chain, start, fk.position, rot, 30, 1e-9, give_up_after=8, initial_damping=1e-3, max_step=1.0)
    q_t, within = nearest_periodic_copy(q_t, torch.zeros(6, dtype=torch.float64), chain.lower, chain.upper, chain.periodic)
    pe2, oe2 = pose_error(chain, q_t, fk.position, rot)
    ok_t = (within & (pe2 <= 1e-6) & (oe2 <= 1e-5)).numpy()
    assert 0.2 < ok.mean() and (ok == ok_t).mean() >= 0.98
    both = ok & ok_t
    assert np.abs(q[both] - q_t.numpy()[both]).max() < 1e-6  # same solutions, not merely both valid


def test_prismatic_joint_chain_and_no_refine_mode():
    eye = np.eye(4)
    up = np.eye(4)
    up[2, 3] = 0.3
    joints = [
        JointSpec("j1", "revolute", "base", "l1", eye, [0, 0, 1], -math.pi, math.pi),
        JointSpec("slide", "prismatic", "l1", "l2", up, [1, 0, 0], 0.0, 0.5),
        JointSpec("j3", "revolute", "l2", "l3", up, [0, 1, 0], -2.0, 2.0),
        JointSpec("tip", "fixed", "l3", "tool", up),
    ]
    chain = KinematicChain(joints, name="rpr")
    q_true, fk, start = _case(chain, 200, 1, noise=0.05)
    C = kernels.chain_arrays(chain)
    q, pe, oe, ok = kernels.refine_check(C, start.numpy(), fk.position.numpy(), None, np.zeros((200, 3)), OPTS)
    assert ok.mean() > 0.95 and pe[ok].max() <= 1e-9
    assert (chain.forward(torch.from_numpy(q[ok])).position - fk.position[torch.from_numpy(ok)]).norm(dim=-1).max() <= 1e-9
    # refine = 0: samples are only wrapped and checked; the exact joints pass, perturbed ones do not
    no_ref = dataclasses.replace(OPTS, refine=False)
    _, pe0, _, ok0 = kernels.refine_check(C, q_true.numpy(), fk.position.numpy(), None, np.zeros((200, 3)), no_ref)
    assert ok0.all() and pe0.max() < 1e-12
    _, _, _, ok1 = kernels.refine_check(C, start.numpy(), fk.position.numpy(), None, np.zeros((200, 3)), no_ref)
    assert not ok1.any()


def test_wrapping_picks_the_in_limit_copy_nearest_the_reference():
    chain = load_robot("ur3")  # +-2 pi on every joint
    _, fk, _ = _case(chain, 50, 2)
    q_true = chain.sample_configurations(50, torch.Generator().manual_seed(2))
    ref = np.full((50, 6), 5.5)
    q, _, _, ok = kernels.refine_check(kernels.chain_arrays(chain), q_true.numpy(), fk.position.numpy(), fk.rotation.numpy(), ref, OPTS)
    expect, within = nearest_periodic_copy(q_true, torch.from_numpy(ref), chain.lower, chain.upper, chain.periodic)
    assert ok.all() and within.all()
    assert np.abs(q - expect.numpy()).max() < 1e-9
    assert (q <= chain.upper + 1e-9).all() and (q >= 3.0).any()


def test_representatives_are_distinct_best_of_their_cluster_and_count_singletons():
    periodic = np.array([True, True])
    # target 0: a cluster of three (one across the 2*pi seam), a singleton, an invalid sample
    q = np.array([[[0.0, 1.0], [0.004, 1.0], [2 * math.pi - 0.003, 1.0], [2.0, -1.0], [5.0, 5.0]]])
    err = np.array([[3e-10, 1e-10, 2e-10, 5e-10, 0.0]])
    ok = np.array([[True, True, True, True, False]])
    rep, single = kernels.distinct_representatives(q, err, ok, periodic, 1e-2)
    assert rep.tolist() == [[False, True, False, True, False]]  # lowest error of the cluster, the singleton
    assert single.tolist() == [1]
    chosen, valid = kernels.select(q, rep, np.array([[2.1, -1.0]]), periodic, 3)
    assert valid.tolist() == [[True, True, False]] and chosen[0, :2].tolist() == [3, 1]  # nearest the seed first


def test_farthest_point_selection_orders_by_diversity():
    periodic = np.array([True])
    q = np.array([[[0.0], [0.1], [3.0], [1.5], [-1.5]]])
    rep = np.ones((1, 5), dtype=bool)
    chosen, valid = kernels.select(q, rep, None, periodic, 5)
    assert valid.all()
    assert chosen[0, 0] == 0 and chosen[0, 1] == 2  # start at the first, then the farthest (3.0)
    assert set(chosen[0, 2:4].tolist()) == {3, 4} and chosen[0, 4] == 1  # the near-duplicate last


def test_options_must_be_kernel_options():
    chain = load_robot("ur3")
    with pytest.raises(TypeError, match="KernelOptions"):
        kernels.refine_check(kernels.chain_arrays(chain), np.zeros((1, 6)), np.zeros((1, 3)), None, np.zeros((1, 6)), (30, 8))


def test_representatives_of_different_classes_are_never_merged():
    periodic = np.array([True, True])
    q = np.array([[[0.0, 1.0], [0.004, 1.0], [0.006, 1.0]]])
    err = np.array([[1e-10, 2e-10, 3e-10]])
    ok = np.ones((1, 3), dtype=bool)
    rep, _ = kernels.distinct_representatives(q, err, ok, periodic, 1e-2)
    assert rep.tolist() == [[True, False, False]]
    rep, single = kernels.distinct_representatives(q, err, ok, periodic, 1e-2, labels=np.array([[0, 1, 0]]))
    assert rep.tolist() == [[True, True, False]] and single.tolist() == [1]
