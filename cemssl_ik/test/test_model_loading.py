"""load_model: a checkpoint for a robot given by name, URDF path or URDF text, verified against the chain."""

from __future__ import annotations

import pytest
import torch
from cemssl_ik.kinematics import URDFError, load_robot, planar_arm, robot_chain, shipped_urdf

from cemssl_ik.models import CheckpointError, ModelConfig, load_model, new_model, save_checkpoint


def _save(tmp_path, chain, name="m"):
    model = new_model(chain, ModelConfig(method="cemssl", latent_dim=2, members=2, hidden=(16, 16), output="biternion"))
    save_checkpoint(tmp_path / name, model, chain)
    return tmp_path / name, model


def _renamed(text: str, prefix: str) -> str:
    """The URDF with every link and joint renamed (same kinematics)."""
    for tag in ('<link name="', '<joint name="', '<parent link="', '<child link="'):
        text = text.replace(tag, tag + prefix)
    return text.replace('<robot name="ur3"', '<robot name="my_arm"')


def _same_outputs(a, b, chain) -> bool:
    target = chain.forward(chain.sample_configurations(5, torch.Generator().manual_seed(0))).position
    qa = a.sample(target, None, 2, generator=torch.Generator().manual_seed(1)).q
    qb = b.sample(target, None, 2, generator=torch.Generator().manual_seed(1)).q
    return torch.equal(qa, qb)


def test_shipped_model_loads_for_its_own_robot_once_verified():
    loaded = load_model("ur3_fkloss_position")
    assert (loaded.chain.name, loaded.chain.base_link, loaded.chain.tip_link) == ("ur3", "base_link", "tool0")
    assert loaded.robot.name == "ur3" and loaded.robot.joint_names == tuple(loaded.chain.joint_names)
    assert loaded.urdf == shipped_urdf("ur3")
    assert loaded.method == loaded.info.metadata["method"] and not loaded.model.training
    assert loaded.info.path.name == "ur3_fkloss_position.safetensors"


def test_urdf_text_path_and_name_give_the_same_chain(tmp_path):
    path, model = _save(tmp_path, load_robot("ur3"))
    urdf_file = tmp_path / "ur3.urdf"
    urdf_file.write_text(shipped_urdf("ur3"))
    by_name, by_text, by_path = load_model(path, "ur3"), load_model(path, shipped_urdf("ur3")), load_model(path, urdf_file)
    for loaded in (by_name, by_text, by_path):
        assert loaded.chain.kinematics_hash == by_name.chain.kinematics_hash and loaded.urdf == shipped_urdf("ur3")
        assert _same_outputs(loaded.model, model, loaded.chain)


def test_renamed_links_load_with_their_ends_and_other_ends_are_refused(tmp_path):
    path, model = _save(tmp_path, load_robot("ur3"))
    renamed = _renamed(shipped_urdf("ur3"), "ur_")
    loaded = load_model(path, renamed, base_link="ur_base_link", tip_link="ur_tool0")
    assert loaded.chain.joint_names[0].startswith("ur_") and _same_outputs(loaded.model, model, loaded.chain)
    with pytest.raises(URDFError, match="unknown base link"):
        load_model(path, renamed)  # the checkpoint's links are not in this URDF
    with pytest.raises(ValueError, match="give the URDF that has them"):
        load_model(path, base_link="base")  # no URDF: only the checkpoint's own chain
    with pytest.raises(CheckpointError, match="base_link->tool0 vs base->tool0"):
        load_model(path, "ur3", base_link="base")  # another chain of the same robot


def test_expected_joint_names_are_checked_before_the_weights(tmp_path):
    path, _ = _save(tmp_path, load_robot("ur3"))
    names = list(load_robot("ur3").joint_names)
    assert list(load_model(path, joint_names=names).chain.joint_names) == names
    assert load_model(path, joint_names=[""]).chain.dof == 6  # [""]: the ROS parameter's "any"
    with pytest.raises(ValueError, match="do not match the chain"):
        load_model(path, joint_names=names[::-1])


def test_generated_and_unshipped_robots(tmp_path):
    planar, _ = _save(tmp_path, planar_arm(3), "planar")
    loaded = load_model(planar)
    assert loaded.chain.name == "planar3" and loaded.urdf is None
    with pytest.raises(ValueError, match="generated chain"):
        load_model(planar, tip_link="link2")
    mine = robot_chain(_renamed(shipped_urdf("ur3"), ""), "base_link", "tool0")
    path, _ = _save(tmp_path, mine.chain, "mine")
    with pytest.raises(ValueError, match="not shipped with the package: give its URDF"):
        load_model(path)
    assert load_model(path, mine.urdf).robot.name == "my_arm"
    with pytest.raises(ValueError, match="unknown robot"):
        load_model(path, "ur4")
    with pytest.raises(CheckpointError, match="needs both"):
        load_model(tmp_path / "missing")
