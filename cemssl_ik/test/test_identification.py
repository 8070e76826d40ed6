"""Kinematic identification and UR calibration files: known perturbations are recovered."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cemssl_ik.kinematics import KinematicChain, load_robot, matrix_to_quaternion
from cemssl_ik.kinematics.robots import find_package_file
from cemssl_ik.learning.identification import identify_chain, matrix_to_rpy, read_ur_calibration, urdf_with_chain
from cemssl_ik.sim.perturbation import KinematicPerturbation, perturbed_chain, uniform_link_change
from conftest import PACKAGE_ROOT

UR3 = load_robot("ur3")
DATA = PACKAGE_ROOT / "test" / "data"
PERTURBATION = KinematicPerturbation(link_length_changes=(0.05, 0.0, 0.03, 0.02, 0.01, 0.05), joint_zero_offsets=(0.01, -0.02, 0.0, 0.015, 0.0, 0.03), tool_offset=(0.0, 0.01, 0.1))
FRESH = UR3.sample_configurations(500, torch.Generator().manual_seed(99))


def _measure(true: KinematicChain, n: int, seed: int, noise: float = 0.0):
    q = UR3.sample_configurations(n, torch.Generator().manual_seed(seed))
    fk = true.forward(q)
    p = fk.position.numpy() + np.random.default_rng(seed).normal(0.0, noise, (n, 3))
    return q.numpy(), p, matrix_to_quaternion(fk.rotation).numpy()


@pytest.mark.parametrize("pose", [False, True], ids=["position-only", "pose"])
def test_noise_free_measurements_identify_the_arm_exactly(pose):
    true = perturbed_chain(UR3, PERTURBATION)
    q, p, quat = _measure(true, 40, seed=1)
    res = identify_chain(UR3, q, p, quat if pose else None)
    assert res.residual_before_mm > 50 and res.residual_after_mm < 1e-6
    err = (res.chain.forward(FRESH).position - true.forward(FRESH).position).norm(dim=-1)
    assert float(err.max()) < 1e-9  # on configurations it never saw
    if pose:
        assert float((res.chain.forward(FRESH).rotation - true.forward(FRESH).rotation).abs().max()) < 1e-9
    # redundancies every UR3 data set has: a zero offset and the rotation of the same origin about the
    # joint axis; translations along the parallel shoulder / elbow / wrist_1 axes
    dropped = set(res.unidentifiable)
    for joint in ("shoulder_lift_joint", "elbow_joint", "wrist_1_joint"):
        assert {f"{joint}.zero", f"{joint}.origin.rz"} & dropped, joint  # one of each redundant pair
    assert len(dropped) >= 15
    if not pose:
        assert {"tool.rx", "tool.ry", "tool.rz"} <= set(res.unidentifiable)  # a point has no orientation


def test_noisy_measurements_give_a_chain_within_the_noise():
    true = perturbed_chain(UR3, KinematicPerturbation(link_length_changes=uniform_link_change(UR3, 0.05)))
    q, p, _ = _measure(true, 150, seed=2, noise=5e-5)  # 0.05 mm per axis
    res = identify_chain(UR3, q, p)
    err = (res.chain.forward(FRESH).position - true.forward(FRESH).position).norm(dim=-1)
    assert float(err.mean()) < 5e-5 and res.residual_after_mm < 0.15


def test_bad_input_is_refused():
    q, p, quat = _measure(UR3, 5, seed=3)
    with pytest.raises(ValueError, match="samples cannot determine"):
        identify_chain(UR3, q, p)
    with pytest.raises(ValueError, match="finite"):
        identify_chain(UR3, np.full((40, 6), np.nan), np.zeros((40, 3)))
    with pytest.raises(ValueError, match="must be"):
        identify_chain(UR3, np.zeros((40, 5)), np.zeros((40, 3)))


def test_urdf_of_the_identified_chain_round_trips():
    true = perturbed_chain(UR3, PERTURBATION)
    q, p, quat = _measure(true, 40, seed=4)
    chain = identify_chain(UR3, q, p, quat).chain
    urdf = urdf_with_chain(find_package_file("urdf/ur3.urdf").read_text(), chain)
    again = KinematicChain.from_urdf(urdf, "base_link", "tool0")
    assert float((again.forward(FRESH).position - chain.forward(FRESH).position).abs().max()) < 1e-12
    assert urdf.count("<link") == find_package_file("urdf/ur3.urdf").read_text().count("<link")  # the rest is kept
    for rpy in ([0.1, -0.4, 2.0], [0.0, np.pi / 2, 0.3], [np.pi, 0.0, -np.pi / 2]):
        from cemssl_ik.kinematics.transforms import rpy_to_matrix

        R = rpy_to_matrix(rpy)
        assert np.allclose(rpy_to_matrix(matrix_to_rpy(R)), R, atol=1e-12)


def test_ur_calibration_file_nominal_is_the_package_urdf_and_changes_move_fk(tmp_path):
    nominal = read_ur_calibration(DATA / "ur3_nominal_kinematics.yaml", UR3)
    assert float((nominal.forward(FRESH).position - UR3.forward(FRESH).position).abs().max()) < 1e-9
    text = (DATA / "ur3_nominal_kinematics.yaml").read_text().replace("x: -0.24365", "x: -0.24465")  # forearm 1 mm longer
    (tmp_path / "cal.yaml").write_text(text)
    calibrated = read_ur_calibration(tmp_path / "cal.yaml", UR3)
    moved = (calibrated.forward(FRESH).position - UR3.forward(FRESH).position).norm(dim=-1)
    assert 0 < float(moved.max()) <= 1e-3 + 1e-12


@pytest.mark.parametrize(
    "text, match",
    [
        ("not: [valid", "not YAML"),
        ("other: 1", "no 'kinematics:'"),
        ("kinematics: {shoulder: {x: 0, y: 0, z: 0, roll: 0, pitch: 0, yaw: 0}}", "upper_arm missing"),
        ("kinematics:\n  shoulder: {x: .nan, y: 0, z: 0, roll: 0, pitch: 0, yaw: 0}", "finite"),
        ("kinematics:\n  shoulder: {x: '1', y: 0, z: 0, roll: 0, pitch: 0, yaw: 0}", "finite number"),
        ("kinematics: " + "[" * 50 + "]" * 50, "no 'kinematics:'"),
    ],
)
def test_hostile_calibration_files_are_refused(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_ur_calibration(path, UR3)
    big = tmp_path / "big.yaml"
    big.write_text("#" * 100_000)
    with pytest.raises(ValueError, match="larger"):
        read_ur_calibration(big, UR3)
