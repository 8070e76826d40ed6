"""The learner's strategies in process (no DDS): goals validated, the calibration-file strategy makes
no identification move, checkpoints and URDFs written for the identified chain."""

from __future__ import annotations

import json
import math

import pytest
import torch
from cemssl_ik.kinematics import chain_from_urdf, load_robot
from cemssl_ik.kinematics.ur_calibration import apply_ur_calibration, load_ur_calibration
from cemssl_ik.learning import AnalyticForwardModel
from cemssl_ik.learning.adaptation import AdaptationConfig, Adapter, LearnGoal, LoggedForwardModel, chain_from_calibration_file, identify_from_samples
from cemssl_ik.learning.sample_log import SampleLog
from conftest import PACKAGE_ROOT

from cemssl_ik.models import ModelConfig, load_checkpoint, new_model

UR3 = load_robot("ur3")
NOMINAL_YAML = PACKAGE_ROOT / "test" / "data" / "ur3_nominal_kinematics.yaml"


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(strategy="dance"), "strategy"),
        (dict(strategy="calibration_file"), "calibration_file"),
        (dict(strategy="calibrate", output="../x"), "output"),
        (dict(strategy="calibrate", max_moves=-1), "max_moves"),
        (dict(strategy="robot", max_minutes=math.nan), "max_minutes"),
    ],
)
def test_bad_goals_are_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        LearnGoal(**fields)


def test_calibration_file_strategy_makes_no_identification_move(tmp_path):
    yaml_path = tmp_path / "my_robot_calibration.yaml"
    yaml_path.write_text(NOMINAL_YAML.read_text().replace("x: -0.24365", "x: -0.25365"))  # forearm 1 cm longer
    true_arm = apply_ur_calibration(UR3, load_ur_calibration(yaml_path))
    torch.manual_seed(0)
    model = new_model(UR3, ModelConfig(target="position", latent_dim=2, members=1, hidden=(32, 32)))
    log = SampleLog.open(tmp_path / "samples.jsonl", dof=6)
    robot = LoggedForwardModel(AnalyticForwardModel(true_arm), log)
    phases = []
    adapter = Adapter(model, UR3, robot, log, tmp_path, AdaptationConfig(eval_targets=4, train_minutes=0.02, checkpoint_every=1.0), identify=identify_from_samples, read_calibration=chain_from_calibration_file, progress=lambda p: phases.append(p.phase))
    out = adapter.run(LearnGoal("calibration_file", calibration_file=str(yaml_path), output="cal"))
    assert out.success, out.message
    assert not any(s.kind == "identify" for s in log.samples) and all(s.kind == "evaluate" for s in log.samples)
    assert "measure" not in phases and "train" in phases
    chain = chain_from_urdf((tmp_path / "cal.urdf").read_text(), "base_link", "tool0")
    q = UR3.sample_configurations(50, torch.Generator().manual_seed(1))
    assert float((chain.forward(q).position - true_arm.forward(q).position).abs().max()) < 1e-12  # the file's arm
    loaded, info = load_checkpoint(out.checkpoint.removesuffix(".safetensors"), chain)  # saved for that chain
    assert info.metadata["training"]["strategy"] == "calibration_file"
    pointer = json.loads((tmp_path / "cal.latest").read_text())
    assert out.checkpoint.endswith(pointer["checkpoint"] + ".safetensors")
    log.close()


def test_identification_from_samples_reports_what_it_did():
    true_arm = apply_ur_calibration(UR3, load_ur_calibration(NOMINAL_YAML))  # nominal: nothing to correct
    q = UR3.sample_configurations(30, torch.Generator().manual_seed(2))
    fk = true_arm.forward(q)
    from cemssl_ik.kinematics import matrix_to_quaternion

    chain, urdf, report = identify_from_samples(UR3, q.numpy(), fk.position.numpy(), matrix_to_quaternion(fk.rotation).numpy())
    assert report["samples"] == 30 and not report["position_only"] and report["residual_after_mm"] < 1e-6
    assert "<robot" in urdf and chain.dof == 6 and report["unidentifiable"]


def test_bench_adaptation_out_file_keeps_records_of_other_settings(tmp_path):
    from cemssl_ik.cli import CLIError, _adaptation_key, _adaptation_records

    path = tmp_path / "adaptation.json"
    assert _adaptation_records(path) == []
    old = [{"link_change_cm": 5.0, "strategy": "calibrate", "noise_mm": 0.0, "model": "m", "seed": 0, "error_after_mm": 0.1}]
    path.write_text(json.dumps(old))
    assert _adaptation_records(path) == old
    rerun = {**old[0], "error_after_mm": 0.05}
    other = {**old[0], "strategy": "robot"}
    assert _adaptation_key(rerun) == _adaptation_key(old[0]) != _adaptation_key(other)
    for bad in ("{}", "[1, 2]", "not json"):
        path.write_text(bad)
        with pytest.raises(CLIError):
            _adaptation_records(path)
