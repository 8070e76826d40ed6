"""The simulated UR3 (real MuJoCo): true kinematics = the perturbed chain, tracking, settling, noise."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from cemssl_ik.kinematics import load_robot
from cemssl_ik.sim import KinematicPerturbation, SimConfig, SimUR3, perturbed_chain, uniform_link_change

# a mark, not importorskip at import time: under ROS's launch_testing pytest plugin a module-level
# skip aborts the collection of the whole test folder
pytestmark = pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="mujoco is not installed (pip install -r requirements/runtime.txt)")

HOME = np.array([0.0, -math.pi / 2, math.pi / 2, -math.pi / 2, -math.pi / 2, 0.0])
PERTURBATION = KinematicPerturbation(
    link_length_changes=(0.05, 0.0, 0.03, -0.02, 0.01, 0.05),
    joint_zero_offsets=(0.01, -0.02, 0.03, -0.01, 0.02, 0.05),
    tool_offset=(0.01, -0.02, 0.1),
)


def _fk(chain, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = chain.forward(torch.as_tensor(q, dtype=torch.float64))
    return r.position.numpy(), r.rotation.numpy()


def test_tool_pose_is_the_perturbed_chain_fk() -> None:
    ur3 = load_robot("ur3")
    sim = SimUR3(SimConfig(perturbation=PERTURBATION))
    true_chain = perturbed_chain(ur3, PERTURBATION)  # built independently of the sim's
    rng = np.random.default_rng(0)
    for q in rng.uniform(-math.pi, math.pi, (20, 6)):
        sim.reset(q)
        p, R = sim.tool_pose()
        p_ref, R_ref = _fk(true_chain, sim.joint_positions())
        assert np.abs(p - p_ref).max() < 1e-9
        assert np.abs(R - R_ref).max() < 1e-9
        p_nom, _ = _fk(ur3, q)
        assert np.linalg.norm(p - p_nom) > 1e-3  # the true arm is not the nominal one


def test_identity_perturbation_is_the_urdf() -> None:
    sim = SimUR3(SimConfig())
    sim.reset(np.array([0.3, -1.0, 1.2, -0.5, 0.7, 2.0]))
    p, R = sim.tool_pose()
    p_ref, R_ref = _fk(load_robot("ur3"), sim.joint_positions())
    assert np.abs(p - p_ref).max() < 1e-9 and np.abs(R - R_ref).max() < 1e-9


def test_perturbation_semantics() -> None:
    ur3 = load_robot("ur3")
    q = torch.tensor([0.2, -0.9, 1.1, -0.4, 0.8, -1.3], dtype=torch.float64)
    # joint zero offsets: the true arm at reading q is the nominal arm at q + offset
    offsets = torch.tensor([0.01, -0.02, 0.03, -0.04, 0.05, -0.06], dtype=torch.float64)
    shifted = perturbed_chain(ur3, KinematicPerturbation(joint_zero_offsets=tuple(offsets.tolist())))
    assert torch.allclose(shifted.forward(q).position, ur3.forward(q + offsets).position, atol=1e-12)
    # tool offset: expressed in the tip frame
    tool = perturbed_chain(ur3, KinematicPerturbation(tool_offset=(0.01, 0.02, 0.1)))
    nominal = ur3.forward(q)
    expected = nominal.position + nominal.rotation @ torch.tensor([0.01, 0.02, 0.1], dtype=torch.float64)
    assert torch.allclose(tool.forward(q).position, expected, atol=1e-12)
    # link length: +5 cm on the upper arm moves the elbow 5 cm further from the shoulder
    longer = perturbed_chain(ur3, KinematicPerturbation(link_length_changes=(0, 0, 0.05, 0, 0, 0)))
    names, T = longer.link_frames(q)
    _, T0 = ur3.link_frames(q)
    i, j = names.index("upper_arm_link"), names.index("forearm_link")
    assert float(torch.linalg.norm(T[j, :3, 3] - T[i, :3, 3])) == pytest.approx(float(torch.linalg.norm(T0[j, :3, 3] - T0[i, :3, 3])) + 0.05, abs=1e-12)
    assert uniform_link_change(ur3, 0.05) == (0.05, 0.0, 0.05, 0.05, 0.05, 0.05)


def test_perturbation_errors() -> None:
    ur3 = load_robot("ur3")
    with pytest.raises(ValueError, match="shoulder_lift_joint"):
        perturbed_chain(ur3, KinematicPerturbation(link_length_changes=(0, 0.01, 0, 0, 0, 0)))
    with pytest.raises(ValueError, match="6 movable joints"):
        perturbed_chain(ur3, KinematicPerturbation(joint_zero_offsets=(0.1, 0.2)))
    with pytest.raises(ValueError, match="finite"):
        KinematicPerturbation(tool_offset=(0.0, float("nan"), 0.0))
    with pytest.raises(ValueError, match="natural_frequency_hz"):
        SimConfig(natural_frequency_hz=0.0)
    with pytest.raises(ValueError, match="initial_positions"):
        SimUR3(SimConfig(initial_positions=(0.0, 1.0)))


def _run_until_settled(sim: SimUR3, limit: float) -> float:
    start = sim.time
    while not sim.settled():
        sim.step(0.01)
        if sim.time - start > limit:
            raise AssertionError(f"not settled within {limit} s of simulated time; tracking error {sim.tracking_error().max():.2e} rad")
    return sim.time - start


def test_tracks_a_trajectory_and_settles_at_its_end() -> None:
    sim = SimUR3(SimConfig(perturbation=PERTURBATION))
    q0 = sim.joint_positions()
    mid = q0 + np.array([0.2, -0.1, 0.2, 0.3, -0.2, 0.5])
    goal = q0 + np.array([0.4, -0.2, 0.3, 0.5, -0.4, 1.0])
    sim.command_trajectory(np.stack([mid, goal]), [1.0, 2.0])
    peak_error = 0.0
    while sim.time < 2.0:
        sim.step(0.01)
        peak_error = max(peak_error, float(sim.tracking_error().max()))
    settle = _run_until_settled(sim, 1.0)  # after the trajectory's end: a realistic fraction of a second
    q = sim.joint_positions()
    assert np.abs(q - goal).max() <= sim.config.settle_position_tolerance
    assert peak_error < 0.02  # PD with velocity feed-forward follows within ~1 degree
    assert 0.0 < settle < 1.0
    p, R = sim.tool_pose()
    p_ref, R_ref = _fk(sim.true_chain, q)
    assert np.abs(p - p_ref).max() < 1e-9 and np.abs(R - R_ref).max() < 1e-9


def test_holds_against_gravity() -> None:
    # arm stretched out horizontally: the largest gravity torque on the shoulder
    q = np.array([0.0, 0.0, 0.0, -math.pi / 2, 0.0, 0.0])
    sim = SimUR3(SimConfig(initial_positions=tuple(q)))
    sim.step(3.0)
    assert np.abs(sim.joint_positions() - q).max() < 1e-6
    assert sim.settled()


def test_setpoint_respects_velocity_limits() -> None:
    sim = SimUR3(SimConfig())
    q0 = sim.joint_positions()
    goal = q0 + np.array([1.0, 0.0, 0.0, 0.0, 0.0, 2.0])
    sim.command_trajectory(goal[None], [0.01])  # asks for 100 rad/s
    vmax = sim.nominal_chain.velocity_limits
    peak = np.zeros(6)
    while sim.time < 0.5:
        sim.step(0.002)
        peak = np.maximum(peak, np.abs(sim.joint_velocities()))
    assert np.all(peak <= vmax * 1.05)
    duration = _run_until_settled(sim, 3.0)
    assert np.abs(sim.joint_positions() - goal).max() <= sim.config.settle_position_tolerance
    assert sim.time >= 1.0 / math.pi  # the shoulder needs at least 1 rad / (pi rad/s)
    assert duration > 0


def test_hold_aborts_the_trajectory() -> None:
    sim = SimUR3(SimConfig())
    q0 = sim.joint_positions()
    sim.command_trajectory((q0 + 0.5)[None], [2.0])
    sim.step(0.5)
    sim.hold()
    held = sim.joint_positions()
    sim.step(1.0)
    assert np.abs(sim.joint_positions() - held).max() < 0.05  # stops within its braking distance
    assert np.abs(sim.joint_positions() - (q0 + 0.5)).max() > 0.2
    assert sim.trajectory_done()


def test_measurement_noise() -> None:
    quiet = SimUR3(SimConfig())
    m = quiet.measure()
    assert np.array_equal(m.q, quiet.joint_positions())
    p, _ = quiet.tool_pose()
    assert np.array_equal(m.position, p)
    noisy = SimUR3(SimConfig(joint_noise_std=1e-3, tool_position_noise_std=5e-5, tool_orientation_noise_std=1e-3, seed=3))
    samples = [noisy.measure() for _ in range(400)]
    q_err = np.stack([s.q for s in samples]) - noisy.joint_positions()
    p_err = np.stack([s.position for s in samples]) - noisy.tool_pose()[0]
    assert np.std(q_err) == pytest.approx(1e-3, rel=0.1)
    assert np.std(p_err) == pytest.approx(5e-5, rel=0.1)
    R = samples[0].rotation
    assert np.abs(R @ R.T - np.eye(3)).max() < 1e-12  # still a rotation


def test_command_validation() -> None:
    sim = SimUR3(SimConfig())
    q0 = sim.joint_positions()
    with pytest.raises(ValueError, match="finite"):
        sim.command_trajectory(np.full((1, 6), np.nan), [1.0])
    with pytest.raises(ValueError, match="increasing"):
        sim.command_trajectory(np.stack([q0, q0]), [1.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        sim.command_trajectory(q0, [1.0])
