"""KinematicChain: FK against independent implementations, Jacobian against autograd, test robots, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from cemssl_ik.kinematics import (
    JointSpec,
    KinematicChain,
    URDFError,
    artificial_chain,
    artificial_transform,
    chain_from_urdf,
    load_robot,
    planar_arm,
    planar_fk_closed_form,
    rotation_angle,
)
from cemssl_ik.kinematics.transforms import origin_to_matrix, skew
from cemssl_ik.resources import find_package_file

UR3_URDF = find_package_file("urdf/ur3.urdf")


def per_sample_fk(chain: KinematicChain, q: np.ndarray) -> np.ndarray:
    """Plain numpy loop over the URDF joints (no folding, no batching): (n, dof) -> (n, 4, 4)."""
    out = []
    for sample in q:
        T, i = np.eye(4), 0
        for j in chain.joints:
            T = T @ j.origin
            if j.movable:
                M = np.eye(4)
                if j.type == "prismatic":
                    M[:3, 3] = j.axis * sample[i]
                else:
                    K = skew(j.axis)
                    M[:3, :3] += math.sin(sample[i]) * K + (1 - math.cos(sample[i])) * K @ K
                T, i = T @ M, i + 1
        out.append(T)
    return np.stack(out)


def test_ur3_matches_ur_description_facts():
    chain = load_robot("ur3")
    assert chain.joint_names == ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint", "wrist_3_joint")
    assert (chain.base_link, chain.tip_link) == ("base_link", "tool0")
    np.testing.assert_allclose(chain.upper, [2 * math.pi, 2 * math.pi, math.pi, 2 * math.pi, 2 * math.pi, 2 * math.pi])
    np.testing.assert_allclose(chain.lower, -chain.upper)
    np.testing.assert_allclose(chain.velocity_limits, [math.pi] * 3 + [2 * math.pi] * 3)
    # zero configuration: arm stretched along -x of `base` (= +x of base_link), DH offsets
    fk = chain.forward(torch.zeros(6, dtype=torch.float64))
    np.testing.assert_allclose(fk.position.numpy(), [0.24365 + 0.21325, 0.11235 + 0.0819, 0.1519 - 0.08535], atol=1e-9)


def test_fk_matches_ur_analytic_ik_10000_configs():
    """Independent reference: the C++ closed-form FK of ur-analytic-ik (DH, base -> tool0)."""
    ur_analytic_ik = pytest.importorskip("ur_analytic_ik")
    chain = chain_from_urdf(UR3_URDF, "base", "tool0")
    q = chain.sample_configurations(10_000, torch.Generator().manual_seed(1), limits="real")
    fk = chain.forward(q)
    ref = np.stack([ur_analytic_ik.ur3.forward_kinematics(*row) for row in q.tolist()])
    assert np.abs(fk.position.numpy() - ref[:, :3, 3]).max() <= 1e-9
    assert np.abs(fk.rotation.numpy() - ref[:, :3, :3]).max() <= 1e-8


def test_fk_matches_per_sample_loop_and_link_frames():
    chain = load_robot("ur3")
    q = chain.sample_configurations(500, torch.Generator().manual_seed(2), limits="real")
    fk = chain.forward(q)
    ref = per_sample_fk(chain, q.numpy())
    np.testing.assert_allclose(fk.position.numpy(), ref[:, :3, 3], atol=1e-12)
    np.testing.assert_allclose(fk.rotation.numpy(), ref[:, :3, :3], atol=1e-12)
    names, frames = chain.link_frames(q)
    assert names[0] == "base_link" and names[-1] == "tool0" and "flange" in names and frames.shape == (500, len(names), 4, 4)
    np.testing.assert_allclose(frames[:, -1].numpy(), ref, atol=1e-12)


def test_fk_matches_pytorch_kinematics():
    pk = pytest.importorskip("pytorch_kinematics")
    chain = load_robot("ur3")
    ref_chain = pk.build_serial_chain_from_urdf(UR3_URDF.read_text(), "tool0", "base_link").to(dtype=torch.float64)
    q = chain.sample_configurations(2000, torch.Generator().manual_seed(3), limits="real")
    ref = ref_chain.forward_kinematics(q).get_matrix()
    # pytorch-kinematics builds joint origins in float32 before casting, hence ~1e-7 agreement only
    assert (chain.forward(q).position - ref[:, :3, 3]).abs().max() < 1e-6


def test_batch_shapes_and_float32():
    chain = load_robot("ur3")
    q64 = chain.sample_configurations(24, torch.Generator().manual_seed(4)).reshape(2, 3, 4, 6)
    fk64 = chain.forward(q64)
    assert fk64.position.shape == (2, 3, 4, 3) and fk64.rotation.shape == (2, 3, 4, 3, 3)
    fk32 = chain.forward(q64.float())
    assert fk32.position.dtype == torch.float32
    assert (fk32.position.double() - fk64.position).abs().max() < 1e-5
    single = chain.forward(q64[0, 0, 0])
    assert single.position.shape == (3,)
    assert torch.allclose(single.position, fk64.position[0, 0, 0])
    with pytest.raises(ValueError, match="shape"):
        chain.forward(torch.zeros(5, 7, dtype=torch.float64))
    with pytest.raises(TypeError):
        chain.forward(np.zeros((5, 6)))


@pytest.mark.parametrize("robot", ["ur3", "planar4", "artificial7"])
def test_jacobian_matches_autograd(robot):
    chain = load_robot(robot)
    q = chain.sample_configurations(6, torch.Generator().manual_seed(5))
    J = chain.jacobian(q)
    assert J.shape == (6, 6, chain.dof)
    J_pos = torch.autograd.functional.jacobian(lambda x: chain.forward(x).position.sum(0), q).permute(1, 0, 2)
    torch.testing.assert_close(J[:, :3], J_pos, atol=1e-12, rtol=0)
    # angular part: omega = vee(dR R^T) along each joint direction
    for k in range(chain.dof):
        dR = torch.autograd.functional.jvp(lambda x: chain.forward(x).rotation, q, torch.eye(chain.dof, dtype=q.dtype)[k].expand_as(q))[1]
        W = dR @ chain.forward(q).rotation.transpose(-1, -2)
        omega = torch.stack([W[:, 2, 1], W[:, 0, 2], W[:, 1, 0]], dim=-1)
        torch.testing.assert_close(J[:, 3:, k], omega, atol=1e-12, rtol=0)


def test_prismatic_chain_fk_and_jacobian():
    joints = [
        JointSpec("rot", "revolute", "a", "b", origin_to_matrix([0, 0, 0.2], [0, 0, 0]), [0, 0, 1], -3, 3),
        JointSpec("slide", "prismatic", "b", "c", origin_to_matrix([0.1, 0, 0], [0.3, 0, 0]), [1, 0, 0], -0.5, 0.5),
        JointSpec("rot2", "revolute", "c", "d", origin_to_matrix([0, 0.05, 0], [0, 0.2, 0]), [0, 1, 0], -3, 3),
        JointSpec("tip", "fixed", "d", "e", origin_to_matrix([0.1, 0, 0], [0, 0, 0])),
    ]
    chain = KinematicChain(joints)
    q = torch.tensor([[0.4, 0.2, -0.7], [-1.0, -0.3, 0.1]], dtype=torch.float64)
    np.testing.assert_allclose(chain.forward(q).position.numpy(), per_sample_fk(chain, q.numpy())[:, :3, 3], atol=1e-12)
    J_pos = torch.autograd.functional.jacobian(lambda x: chain.forward(x).position.sum(0), q).permute(1, 0, 2)
    torch.testing.assert_close(chain.jacobian(q)[:, :3], J_pos, atol=1e-12, rtol=0)
    assert torch.all(chain.jacobian(q)[:, 3:, 1] == 0)


@pytest.mark.parametrize("n", [2, 3, 6, 10])
def test_planar_arm_matches_paper_001_equations(n):
    lengths = [0.5 + 0.1 * i for i in range(n)]
    chain = planar_arm(n, lengths)
    q = chain.sample_configurations(300, torch.Generator().manual_seed(n))
    fk = chain.forward(q)
    torch.testing.assert_close(fk.position[:, :2], planar_fk_closed_form(q, lengths), atol=1e-12, rtol=0)
    assert torch.all(fk.position[:, 2].abs() < 1e-15)


@pytest.mark.parametrize("n", [1, 4, 7, 20])
def test_artificial_chain_matches_paper_002_equations(n):
    chain = artificial_chain(n)
    q = chain.sample_configurations(50, torch.Generator().manual_seed(n))
    fk = chain.forward(q)
    ref = np.stack([artificial_transform(row) for row in q.numpy()])
    np.testing.assert_allclose(fk.position.numpy(), ref[:, :3, 3], atol=1e-12)
    np.testing.assert_allclose(fk.rotation.numpy(), ref[:, :3, :3], atol=1e-12)
    lo, hi = chain.learning_limits()
    np.testing.assert_allclose(hi, [math.radians(120) if k % 2 == 1 else math.pi for k in range(1, n + 1)])


def test_limits_sampling_and_learning_range():
    chain = load_robot("ur3")
    lo, hi = chain.learning_limits()
    np.testing.assert_allclose(hi, [math.pi] * 6)
    q = chain.sample_configurations(1000, torch.Generator().manual_seed(6), limits="real")
    assert chain.within_limits(q).all()
    assert (q.abs() > math.pi).any()  # real UR limits span two turns
    assert not chain.within_limits(torch.tensor([0, 0, 3.5, 0, 0, 0], dtype=torch.float64))


def test_base_frame_is_base_link_rotated_by_pi():
    q = load_robot("ur3").sample_configurations(10, torch.Generator().manual_seed(7))
    a = load_robot("ur3", base_link="base_link").forward(q)
    b = load_robot("ur3", base_link="base").forward(q)
    torch.testing.assert_close(b.position[:, :2], -a.position[:, :2], atol=1e-12, rtol=0)
    torch.testing.assert_close(b.position[:, 2], a.position[:, 2], atol=1e-12, rtol=0)
    assert rotation_angle(a.rotation, b.rotation).max() > 1.0


def test_flange_and_tool0_share_origin():
    q = load_robot("ur3").sample_configurations(10, torch.Generator().manual_seed(8))
    flange = load_robot("ur3", tip_link="flange").forward(q)
    tool0 = load_robot("ur3").forward(q)
    torch.testing.assert_close(flange.position, tool0.position, atol=1e-12, rtol=0)


def test_malformed_urdf_and_unknown_links_raise_clear_errors(tmp_path):
    with pytest.raises(URDFError, match="could not parse"):
        chain_from_urdf("<robot name='x'><link name='a'></robot>", "a", "a")
    with pytest.raises(URDFError, match="unknown tip link 'nope'"):
        chain_from_urdf(UR3_URDF, "base_link", "nope")
    with pytest.raises(URDFError, match="unknown base link"):
        chain_from_urdf(UR3_URDF, "world", "tool0")
    with pytest.raises(URDFError, match="movable joint"):
        chain_from_urdf(UR3_URDF, "tool0", "base_link")
    with pytest.raises(URDFError, match="not found"):
        chain_from_urdf(tmp_path / "missing.urdf", "a", "b")
    two_trees = "<robot name='x'><link name='a'/><link name='b'/></robot>"
    with pytest.raises(URDFError, match="not connected"):
        chain_from_urdf(two_trees, "a", "b")
    floating = (
        "<robot name='x'><link name='a'/><link name='b'/>"
        "<joint name='j' type='floating'><parent link='a'/><child link='b'/></joint></robot>"
    )
    with pytest.raises(URDFError, match="floating"):
        chain_from_urdf(floating, "a", "b")
    with pytest.raises(ValueError, match="unknown robot"):
        load_robot("ur99")
