"""The single-request path of the solver: numpy twins of the encoders, UR detection by kinematics,
named kernel options and chain constants."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
import torch
from cemssl_ik.kinematics import KinematicChain, load_robot
from cemssl_ik.kinematics.branches import ur_kinematics
from cemssl_ik.kinematics.robots import shipped_urdf
from cemssl_ik.kinematics.ur_analytic import ur_branch_ids_numpy
from cemssl_ik.kinematics.urdf import chain_from_urdf
from cemssl_ik.solver import IKSolver, SolverOptions

from cemssl_ik import kernels
from cemssl_ik.models import ModelConfig, new_model


@pytest.fixture(scope="module")
def chain():
    return load_robot("ur3")


def _prefixed_ur3(prefix: str) -> KinematicChain:
    """The UR3 with every link renamed (as a multi-robot description does): same kinematics."""
    text = shipped_urdf("ur3")
    text = re.sub(r'(<link name="|link=")', rf"\g<1>{prefix}", text)
    return chain_from_urdf(text, f"{prefix}base_link", f"{prefix}tool0")


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("kind", ["position", "pose"])
def test_numpy_encoders_match_the_torch_ones(chain, kind, symmetric):
    model = new_model(chain, ModelConfig(target=kind, latent_dim=2, members=1, hidden=(8,), output="biternion", base_symmetry=symmetric))
    enc, codec = model.target_encoder, model.codec
    q = chain.sample_configurations(7, torch.Generator().manual_seed(5))
    fk = chain.forward(q)
    rot = fk.rotation if kind == "pose" else None
    feats, azimuth = enc.encode_numpy(fk.position.numpy(), None if rot is None else rot.numpy())
    want = enc.encode(fk.position, rot)
    assert feats.dtype == np.float32 and feats.shape == tuple(want.shape)
    assert np.abs(feats - want.numpy()).max() < 1e-5
    assert (azimuth is None) == (not symmetric)
    if symmetric:
        assert np.abs(azimuth - enc.azimuth(fk.position).numpy()).max() < 1e-12
    # raw outputs -> joints: the codec's activate + decode and the model's azimuth shift
    raw = torch.randn(7, 3, codec.out_dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3
    got = codec.decode_raw_numpy(raw.float().numpy(), azimuth)
    want_q = model.decode(codec.activate(raw), fk.position[:, None].expand(7, 3, 3))
    d = torch.from_numpy(got) - want_q
    assert (torch.remainder(d + math.pi, 2 * math.pi) - math.pi).abs().max() < 1e-5


def test_sigmoid_codec_decodes_in_numpy_as_in_torch(chain):
    model = new_model(chain, ModelConfig(target="position", latent_dim=2, members=1, hidden=(8,), output="sigmoid"))
    raw = torch.randn(4, 5, model.codec.out_dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 50  # far into saturation
    got = model.codec.decode_raw_numpy(raw.numpy())
    assert np.isfinite(got).all()
    assert np.abs(got - model.codec.decode(model.codec.activate(raw)).numpy()).max() < 1e-9


def test_ur_arms_are_recognized_by_their_kinematics_not_their_names(chain):
    assert ur_kinematics(chain) == ("ur3", "base_link")
    assert ur_kinematics(load_robot("ur3", "base", "tool0")) == ("ur3", "base")
    assert ur_kinematics(_prefixed_ur3("left_")) == ("ur3", "base_link")
    assert ur_kinematics(chain, ("ur5",)) is None  # other link lengths
    assert ur_kinematics(load_robot("planar3")) is None
    assert ur_kinematics(load_robot("artificial6")) is None


def test_solver_labels_a_renamed_ur_arms_solutions():
    # a prefixed description (two arms in one URDF) is still a UR3: its solutions get their classes
    arm = _prefixed_ur3("right_")
    torch.manual_seed(0)
    model = new_model(arm, ModelConfig(target="pose", latent_dim=2, members=1, hidden=(16,)))
    solver = IKSolver(model, arm)
    q = arm.sample_configurations(3, torch.Generator().manual_seed(4))
    fk = arm.forward(q)
    res = solver.solve(fk.position, fk.rotation, options=SolverOptions(num_solutions=8, random_fraction=1.0))
    ok = res.valid.numpy()
    assert ok.any(axis=1).all()
    branch = res.branch.numpy()
    assert (branch[ok] == ur_branch_ids_numpy(res.solutions.numpy()[ok])).all()
    assert (branch[~ok] == -1).all()


def test_kernel_options_are_named_and_typed(chain):
    consts = kernels.chain_arrays(chain)
    assert isinstance(consts, kernels.ChainArrays) and consts.lower.shape == (6,) and consts.periodic.dtype == np.bool_
    o = kernels.KernelOptions(iterations=20.0, give_up_after=np.int64(8), damping=0, refine=1)
    t = o.compiled()
    assert t._fields == tuple(f.name for f in dataclasses.fields(kernels.KernelOptions))
    assert [type(v) for v in t] == [int, int, float, float, float, float, float, float, float, bool, bool]
    assert t.iterations == 20 and t.give_up_after == 8 and t.damping == 0.0 and t.refine is True
    # an option given as another numeric type answers as its declared type does
    q = chain.sample_configurations(4, torch.Generator().manual_seed(6))
    fk = chain.forward(q)
    start = (q + 0.05).numpy()
    args = (consts, start, fk.position.numpy(), fk.rotation.numpy(), np.zeros((4, 6)))
    a = kernels.refine_check(*args, kernels.KernelOptions(iterations=30, damping=1e-9))
    b = kernels.refine_check(*args, kernels.KernelOptions(iterations=30.0, damping=1e-9, refine=1))
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert a[3].all()
    with pytest.raises(TypeError):
        kernels.refine_check(tuple(consts), *args[1:], kernels.KernelOptions())  # unnamed constants
