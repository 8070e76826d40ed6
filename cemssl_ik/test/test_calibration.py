"""Calibrated chain: known perturbations of the UR3 are recovered; URDF and UR calibration YAML round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from cemssl_ik.kinematics import KinematicChain, chain_from_urdf, load_robot
from cemssl_ik.kinematics.perturbation import KinematicPerturbation, perturbed_chain, uniform_link_change
from cemssl_ik.kinematics.transforms import rotation_angle
from cemssl_ik.kinematics.ur_calibration import apply_ur_calibration, load_ur_calibration, parse_ur_calibration
from cemssl_ik.kinematics.urdf import fixed_transform
from cemssl_ik.learning.calibration import CalibrationConfig, calibrate_chain, calibration_parameter_names, calibration_trial
from cemssl_ik.learning.forward_model import AnalyticForwardModel
from cemssl_ik.resources import find_package_file
from conftest import PACKAGE_ROOT

UR3 = load_robot("ur3")
NOMINAL_YAML = PACKAGE_ROOT / "test" / "data" / "ur3_nominal_kinematics.yaml"
#: +5 cm on every link, zero offsets of 0.01-0.02 rad, a 5 cm tool.
TRUE_UR3 = perturbed_chain(
    UR3,
    KinematicPerturbation(
        link_length_changes=uniform_link_change(UR3, 0.05),
        joint_zero_offsets=(0.01, -0.02, 0.015, 0.01, -0.012, 0.02),
        tool_offset=(0.01, -0.02, 0.05),
    ),
)
FRESH = UR3.sample_configurations(1000, torch.Generator().manual_seed(99))


def _measure(true: KinematicChain, n: int, seed: int, noise_m: float = 0.0):
    """(q (n, 6), position (n, 3) with Gaussian noise per axis, rotation (n, 3, 3)) of the true arm."""
    gen = torch.Generator().manual_seed(seed)
    q = UR3.sample_configurations(n, gen)
    fk = true.forward(q)
    return q, fk.position + noise_m * torch.randn(n, 3, generator=gen, dtype=torch.float64), fk.rotation


def _fk_gap(a: KinematicChain, b: KinematicChain, q: torch.Tensor = FRESH) -> tuple[float, float]:
    """(max position distance m, max rotation angle rad) between two chains' tool poses at q."""
    fa, fb = a.forward(q), b.forward(q)
    return float((fa.position - fb.position).norm(dim=-1).max()), float(rotation_angle(fa.rotation, fb.rotation).max())


@pytest.fixture(scope="module")
def fits():
    """Noise-free fits of the perturbed arm from 60 moves, position-only and full pose."""
    q, p, R = _measure(TRUE_UR3, 60, seed=1)
    return {"position": calibrate_chain(UR3, q, p), "pose": calibrate_chain(UR3, q, p, R, urdf=find_package_file("urdf/ur3.urdf"))}


@pytest.mark.parametrize("kind", ["position", "pose"])
def test_noise_free_measurements_recover_the_perturbed_arm_exactly(fits, kind):
    res = fits[kind]
    assert res.before.mean_position_mm > 50.0  # the nominal chain is centimetres off
    assert res.after.max_position_mm < 1e-9 and res.converged
    dp, dR = _fk_gap(res.chain, TRUE_UR3)
    assert dp < 1e-9  # metres, on fresh configurations
    if kind == "pose":
        assert res.after.max_orientation_deg < 1e-9
        assert dR < 1e-9
    else:
        assert math.isnan(res.after.mean_orientation_deg)
    # The calibrated forward model is the analytic one of the calibrated chain.
    fm = AnalyticForwardModel(res.chain).evaluate(FRESH[:10])
    assert torch.allclose(fm.position, TRUE_UR3.forward(FRESH[:10]).position, atol=1e-9)


def test_unidentifiable_parameters_include_the_known_redundancies(fits):
    names = set(calibration_parameter_names(UR3))
    assert len(names) == 7 * 6 + 6
    joints = UR3.joint_names
    for kind, res in fits.items():
        held = set(res.unidentifiable)
        assert held < names
        # Every UR axis is its joint frame's z: origin.rz is the zero offset again (the zero is kept).
        assert {f"{j}.origin.rz" for j in joints} <= held
        assert not {f"{j}.zero" for j in joints} & held
        # Shoulder lift, elbow and wrist 1 have parallel axes: offsets along them trade off.
        assert {"elbow_joint.origin.z", "wrist_1_joint.origin.z"} <= held
        # The tool's roll about the wrist 3 axis is wrist 3's zero offset.
        assert "tool.rz" in held
        assert not held & set(res.parameter_dict())
        assert len(res.parameters) == len(names)
    # Position-only data say nothing about the tool's orientation.
    assert {"tool.rx", "tool.ry", "tool.rz"} <= set(fits["position"].unidentifiable)
    assert "tool.rx" not in fits["pose"].unidentifiable
    # The rest really is identified: the fitted zero offsets are the true ones.
    pose = fits["pose"].parameter_dict()
    assert pose["shoulder_lift_joint.zero"] == pytest.approx(-0.02, abs=1e-9)


def test_noisy_measurements_give_a_chain_within_the_noise():
    q, p, _ = _measure(TRUE_UR3, 100, seed=2, noise_m=5e-5)  # 0.05 mm per axis
    res = calibrate_chain(UR3, q, p)
    dp = (res.chain.forward(FRESH).position - TRUE_UR3.forward(FRESH).position).norm(dim=-1)
    assert float(dp.mean()) < 0.05e-3  # metres: better than one measurement
    assert float(dp.max()) < 0.3e-3
    # The fit explains the data down to the noise, not below it (about 0.05 mm * sqrt(3) * 0.9 expected).
    assert 0.03 < res.after.mean_position_mm < 0.12


def test_noise_does_not_make_a_tool_less_wrist_tilt_identifiable():
    # Without a tool offset, wrist 3's tilt does not move the tool point; noise fits a tool offset of
    # a few hundredths of a millimetre, through which the tilt would look identifiable and wander.
    true = perturbed_chain(UR3, KinematicPerturbation(link_length_changes=uniform_link_change(UR3, 0.05)))
    q, p, _ = _measure(true, 200, seed=5, noise_m=5e-5)
    res = calibrate_chain(UR3, q, p)
    assert {"wrist_3_joint.zero", "wrist_3_joint.origin.rx", "wrist_3_joint.origin.ry"} <= set(res.unidentifiable)
    rotations = [abs(v) for n, v in res.parameter_dict().items() if ".origin.r" in n or n.endswith(".zero")]
    assert max(rotations) < 1e-2  # radians: no parameter wanders off along a flat valley
    dp = (res.chain.forward(FRESH).position - true.forward(FRESH).position).norm(dim=-1)
    assert float(dp.mean()) < 0.03e-3
    assert res.iterations < 30


def test_calibration_trial_scores_on_fresh_configurations():
    out = calibration_trial(UR3, TRUE_UR3, moves=40, seed=3, test_samples=200)
    assert out["fresh_error_before_mm"] > 50.0
    assert out["fresh_error_max_mm"] < 1e-6
    assert out["moves"] == 40 and out["position_only"] is True
    # The joint axes are recovered, not just the tool points.
    assert out["axis_angle_error_max_deg"] < 1e-6 and out["axis_offset_error_max_mm"] < 1e-6


def test_bad_input_is_refused():
    q, p, R = _measure(TRUE_UR3, 10, seed=4)
    with pytest.raises(ValueError, match="measure at least"):
        calibrate_chain(UR3, q, p)
    q, p, R = _measure(TRUE_UR3, 30, seed=4)
    with pytest.raises(ValueError, match="shape"):
        calibrate_chain(UR3, q[:, :5], p)
    with pytest.raises(ValueError, match="shape"):
        calibrate_chain(UR3, q, p, R[:-1])
    p_bad = p.clone()
    p_bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        calibrate_chain(UR3, q, p_bad)
    with pytest.raises(ValueError, match="constrain no parameter"):
        calibrate_chain(UR3, torch.zeros(30, 6, dtype=torch.float64), torch.zeros(30, 3, dtype=torch.float64), config=CalibrationConfig(min_effect=10.0))
    with pytest.raises(ValueError, match="rotation_weight"):
        CalibrationConfig(rotation_weight=0.0)


def test_urdf_of_the_calibrated_chain_round_trips(fits):
    res = fits["pose"]
    assert res.urdf is not None and res.urdf.lstrip().startswith("<?xml")
    parsed = chain_from_urdf(res.urdf, UR3.base_link, UR3.tip_link)
    assert _fk_gap(parsed, res.chain)[0] < 1e-12
    assert _fk_gap(parsed, TRUE_UR3)[0] < 1e-9
    nominal = find_package_file("urdf/ur3.urdf").read_text()
    assert "<!--" in res.urdf and res.urdf.count("<link ") == nominal.count("<link ") and res.urdf.count("<joint ") == nominal.count("<joint ")
    # Only the joints with corrections were rewritten: the tool offset sits on the last fixed joint.
    assert set(res.origins) == set(UR3.joint_names) | {"flange-tool0"}
    # Transforms off the arm (the controller's base frame) are untouched.
    assert np.array_equal(fixed_transform(res.urdf, "base_link", "base"), fixed_transform(nominal, "base_link", "base"))


def test_nominal_ur_calibration_file_is_the_package_urdf():
    calib = load_ur_calibration(NOMINAL_YAML)
    assert set(calib.origins) == {"shoulder", "upper_arm", "forearm", "wrist_1", "wrist_2", "wrist_3"}
    assert calib.hash == "calib_test_nominal"
    chain = apply_ur_calibration(UR3, calib)
    dp, dR = _fk_gap(chain, UR3)
    assert dp < 1e-9 and dR < 1e-9


def test_a_changed_ur_calibration_moves_fk_as_expected(tmp_path):
    data = yaml.safe_load(NOMINAL_YAML.read_text())
    data["kinematics"]["forearm"]["x"] -= 0.05  # the elbow joint's origin: 5 cm longer upper arm
    data["kinematics"]["wrist_3"]["yaw"] += 0.01
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump(data))
    chain = apply_ur_calibration(UR3, load_ur_calibration(path))
    # Same as the nominal chain with the elbow joint's origin 5 cm longer and wrist 3's origin turned
    # by 0.01 rad about its parent's z (URDF rpy: yaw is applied last, about the fixed parent axis).
    expected = perturbed_chain(UR3, KinematicPerturbation(link_length_changes=(0.0, 0.0, 0.05, 0.0, 0.0, 0.0)))
    origins = {j.name: j.origin.copy() for j in expected.joints}
    c, s = math.cos(0.01), math.sin(0.01)
    origins["wrist_3_joint"][:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ origins["wrist_3_joint"][:3, :3]
    from cemssl_ik.kinematics.chain import JointSpec

    expected = KinematicChain([JointSpec(j.name, j.type, j.parent, j.child, origins[j.name], j.axis, j.lower, j.upper) for j in UR3.joints])
    assert _fk_gap(chain, expected)[0] < 1e-9
    assert _fk_gap(chain, UR3)[0] > 0.04


_GOOD = NOMINAL_YAML.read_text()


@pytest.mark.parametrize(
    "text, match",
    [
        ("kinematics: [1, 2", "not valid YAML"),
        ("- 1\n- 2\n", "top-level key"),
        (_GOOD + "extra: 1\n", "top-level key"),
        (_GOOD.replace("  forearm:", "  forearm_:"), "missing \\['forearm'\\]"),
        (_GOOD.replace("  hash:", "  wrist_4: {}\n  hash:"), "unknown \\['wrist_4'\\]"),
        (_GOOD.replace("z: 0.1519", "z: '0.1519'"), "kinematics.shoulder.z must be a finite number"),
        (_GOOD.replace("z: 0.1519", "z: true"), "finite number"),
        (_GOOD.replace("z: 0.1519", "z: .nan"), "finite number"),
        (_GOOD.replace("z: 0.1519", "z: .inf"), "finite number"),
        (_GOOD.replace("z: 0.1519", "z: 1.0e+3"), "beyond"),
        (_GOOD.replace("    yaw: 0\n  upper_arm:", "  upper_arm:", 1), "exactly the fields"),
        (_GOOD.replace("hash: calib_test_nominal", "hash: [1]"), "hash must be a string"),
        (_GOOD.replace("z: 0.1519", "z: !!python/object/apply:os.system ['true']"), "not valid YAML"),
        ("kinematics:\n  a: " + "x" * 70000 + "\n", "larger than"),
    ],
)
def test_hostile_ur_calibration_files_are_refused(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        parse_ur_calibration(text)
    path = tmp_path / "calibration.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_ur_calibration(path)


def test_ur_calibration_needs_a_ur_chain():
    from cemssl_ik.kinematics import planar_arm

    with pytest.raises(ValueError, match="lacks the UR joints"):
        apply_ur_calibration(planar_arm(3), load_ur_calibration(NOMINAL_YAML))
    with pytest.raises(ValueError, match="not found"):
        load_ur_calibration(PACKAGE_ROOT / "test" / "data" / "no_such_file.yaml")
