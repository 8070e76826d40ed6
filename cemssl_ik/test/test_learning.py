"""Learning core at small scale: CEMSSL, baselines, CINN invertibility, ensemble coverage, FK loss."""

from __future__ import annotations

import math

import pytest
import torch
from cemssl_ik.evaluation.precision import evaluate_precision
from cemssl_ik.kinematics import load_robot, planar_arm
from cemssl_ik.learning import CEMSSLConfig, CEMSSLTrainer, FKLoss, SphereObstacle, UnsupervisedConfig, UnsupervisedTrainer
from cemssl_ik.learning.supervised import SupervisedConfig, SupervisedTrainer
from conftest import small

from cemssl_ik.models import CINN, JointCodec, ModelConfig, TargetEncoder, new_model


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def test_cemssl_lowers_planar3_error_tenfold():
    torch.manual_seed(0)
    chain = planar_arm(3, limit=math.pi / 2)
    model = new_model(chain, small("cemssl", chain))
    before = evaluate_precision(model, chain, 500, seed=3).position_error.mean()
    cfg = CEMSSLConfig(iterations=20, epochs=3, samples_per_iteration=1024, lr=2e-3, lr_final=1e-4, exploration_noise=0.25, exploration_fraction=0.5, eval_every=0, seed=0)
    trainer = CEMSSLTrainer(model, chain, cfg)
    assert trainer.run() == "iterations"
    after = evaluate_precision(model, chain, 500, seed=3).position_error.mean()
    assert after * 10 <= before, f"mean error {before * 1e3:.1f} mm -> {after * 1e3:.1f} mm"
    assert len(trainer.history) == 20 and trainer.history[-1]["lr"] == pytest.approx(1e-4)


def test_emssl_is_cemssl_without_latent():
    chain = planar_arm(2, limit=math.pi / 2)
    model = new_model(chain, small("emssl", chain, latent_dim=0, members=1))
    stats = CEMSSLTrainer(model, chain, CEMSSLConfig(iterations=2, epochs=1, samples_per_iteration=256, eval_every=0)).step()
    assert math.isfinite(stats.train_loss) and stats.valid_fraction == 1.0
    res = model.sample(torch.tensor([[0.5, 0.2, 0.0]]), num_samples=3)
    assert torch.allclose(res.q[0, 0], res.q[0, 1]) and torch.allclose(res.q[0, 0], res.q[0, 2])  # one solution


@pytest.mark.parametrize("method", ["cvae", "cgan", "cinn", "cemssl"])
@pytest.mark.parametrize("target", ["position", "pose"])
def test_every_model_trains_and_samples_with_the_right_shapes(method, target):
    chain = load_robot("ur3")
    model = new_model(chain, small(method, chain, target=target))
    if method == "cemssl":
        CEMSSLTrainer(model, chain, CEMSSLConfig(iterations=1, epochs=1, samples_per_iteration=128, eval_every=0)).run()
    else:
        tr = SupervisedTrainer(model, chain, SupervisedConfig(steps=3, batch_size=32, eval_every=0))
        tr.run()
        assert tr.step_count == 3
    fk = chain.forward(chain.sample_configurations(5, torch.Generator().manual_seed(0)))
    res = model.sample(fk.position, fk.rotation if target == "pose" else None, num_samples=7)
    assert res.q.shape == (5, 7, 6) and res.member.shape == (5, 7) and res.z.shape == (5, 7, model.latent_dim)
    assert torch.isfinite(res.q).all()
    lo, hi = chain.learning_limits()
    assert (res.q >= torch.tensor(lo) - 1e-5).all() and (res.q <= torch.tensor(hi) + 1e-5).all()
    if target == "pose":
        with pytest.raises(ValueError, match="rotation"):
            model.sample(fk.position, None)


def test_member_offsets_spread_few_samples_over_the_ensemble():
    chain = load_robot("ur3")
    torch.manual_seed(0)
    model = new_model(chain, small("cemssl", chain, members=3)).eval()
    pos = chain.forward(chain.sample_configurations(6, torch.Generator().manual_seed(0))).position
    z = torch.randn(6, 5, model.latent_dim)
    plain = model.sample(pos, None, 5, z=z)
    assert torch.equal(plain.member, (torch.arange(5) % 3).expand(6, 5))
    offset = torch.arange(6) % 3
    spread = model.sample(pos, None, 5, z=z, member_offset=offset)
    assert torch.equal(spread.member, (torch.arange(5)[None] + offset[:, None]) % 3)
    # every sample is exactly what its member gives for that (target, z)
    cond = model.encode_targets(pos)[:, None].expand(6, 5, -1)
    for m in range(3):
        own = model.decode(model.generate(cond.reshape(1, 30, -1).expand(3, -1, -1).contiguous(), z.reshape(1, 30, -1).expand(3, -1, -1).contiguous()))[m].reshape(6, 5, -1)
        sel = spread.member == m
        assert torch.allclose(spread.q[sel], own[sel], atol=1e-6)
    # one sample per target: the evaluation's offsets make every member serve a third of the targets
    assert torch.equal(model.sample(pos, None, 1, member_offset=offset).member[:, 0], offset)
    with pytest.raises(ValueError, match="member_offset"):
        model.sample(pos, None, 1, member_offset=torch.zeros(5))


@pytest.mark.parametrize("method", ["cemssl", "cvae", "cinn"])
def test_base_symmetry_models_are_exactly_equivariant_and_train(method):
    """Turning a target about the first joint's axis turns the first joint by the same angle and
    leaves the others unchanged; every trainer feeds such models canonical joints."""
    chain = load_robot("ur3")
    point, axis = chain.base_symmetry_axis()
    assert torch.allclose(torch.as_tensor(axis), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)) and abs(point[0]) + abs(point[1]) < 1e-12
    assert planar_arm(3, limit=math.pi / 2).base_symmetry_axis() is None  # a limited first joint
    with pytest.raises(ValueError, match="full turn"):
        new_model(planar_arm(3, limit=math.pi / 2), small("cemssl", planar_arm(3), base_symmetry=True))
    torch.manual_seed(0)
    model = new_model(chain, small(method, chain, base_symmetry=True, target="pose"))
    enc = model.target_encoder
    fk = chain.forward(chain.sample_configurations(200, torch.Generator().manual_seed(1)))
    canon, _ = enc.canonicalize(fk.position)
    assert canon[:, 1].abs().max() < 1e-12 and (canon[:, 0] >= 0).all()
    assert torch.allclose(canon[:, [0]].norm(dim=-1), fk.position[:, :2].norm(dim=-1)) and torch.allclose(canon[:, 2], fk.position[:, 2], atol=1e-12)
    # the same target turned by theta: same network input, first joint turned by theta
    theta = 0.7
    c, s = math.cos(theta), math.sin(theta)
    Rz = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    p2, R2 = fk.position @ Rz.T, Rz @ fk.rotation
    assert torch.allclose(model.encode_targets(fk.position, fk.rotation), model.encode_targets(p2, R2), atol=1e-5)
    z = torch.randn(200, 3, model.latent_dim)
    q1 = model.sample(fk.position, fk.rotation, 3, z=z).q.double()
    q2 = model.sample(p2, R2, 3, z=z).q.double()
    dq = torch.remainder(q2 - q1 + math.pi, 2 * math.pi) - math.pi
    assert torch.allclose(dq[..., 0], torch.full_like(dq[..., 0], theta), atol=1e-4) and dq[..., 1:].abs().max() < 1e-4
    # FK commutes with it: the turned solutions reach the turned targets as well as the originals reach theirs
    e1 = (chain.forward(q1).position - fk.position[:, None]).norm(dim=-1)
    e2 = (chain.forward(q2).position - p2[:, None]).norm(dim=-1)
    assert torch.allclose(e1, e2, atol=1e-4)
    # joints <-> training targets round trip through the canonical frame
    assert torch.allclose(model.decode(model.normalize_joints(q1.float(), fk.position[:, None].expand(-1, 3, -1)), fk.position[:, None].expand(-1, 3, -1)).double(), q1, atol=1e-5)
    with pytest.raises(ValueError, match="target positions"):
        model.decode(model.normalize_joints(q1.float(), fk.position[:, None].expand(-1, 3, -1)))
    if method == "cemssl":
        CEMSSLTrainer(model, chain, CEMSSLConfig(iterations=1, epochs=1, samples_per_iteration=128, fk_loss_weight=1.0, eval_every=0)).run()
        UnsupervisedTrainer(model, chain, UnsupervisedConfig(steps=2, batch_size=16, eval_every=0)).run()
    else:
        assert SupervisedTrainer(model, chain, SupervisedConfig(steps=2, batch_size=16, eval_every=0)).run() == "steps"
    assert torch.isfinite(model.sample(fk.position, fk.rotation, 2).q).all()


@pytest.mark.parametrize("method", ["cgan", "cinn"])
def test_with_base_symmetry_keeps_the_network_and_its_solutions_on_the_reference_half_plane(method):
    """A model trained without the symmetry gets it for fine-tuning: same weights, exactly its own
    solutions for targets of azimuth 0, and elsewhere those of the turned target, turned back."""
    from cemssl_ik.models import with_base_symmetry

    chain = load_robot("ur3")
    torch.manual_seed(0)
    model = new_model(chain, small(method, chain))
    sym = with_base_symmetry(model, chain)
    assert sym.config.base_symmetry and not model.config.base_symmetry and type(sym) is type(model)
    assert sym.target_encoder.mean == model.target_encoder.mean and sym.target_encoder.scale == model.target_encoder.scale
    assert all(torch.equal(a, b) for a, b in zip(sym.state_dict().values(), model.state_dict().values()))
    fk = chain.forward(chain.sample_configurations(100, torch.Generator().manual_seed(1)))
    canon, _ = sym.target_encoder.canonicalize(fk.position)
    z = torch.randn(100, 2, model.latent_dim)

    def wrapped(d):  # the same angle: a joint at -pi and at +pi (the sigmoid codec's ends) agree
        return torch.remainder(d + math.pi, 2 * math.pi) - math.pi

    q_orig = model.sample(canon, None, 2, z=z).q.double()
    assert wrapped(sym.sample(canon, None, 2, z=z).q.double() - q_orig).abs().max() < 1e-5
    q_sym = sym.sample(fk.position, None, 2, z=z).q.double()
    turn = sym.target_encoder.azimuth(fk.position)[:, None]
    dq = wrapped(q_sym - q_orig)
    assert torch.allclose(dq[..., 0], turn.expand(-1, 2), atol=1e-4) and dq[..., 1:].abs().max() < 1e-4
    assert with_base_symmetry(sym, chain) is sym
    limited = planar_arm(3, limit=math.pi / 2)  # its first joint turns a quarter each way only
    with pytest.raises(ValueError, match="full turn"):
        with_base_symmetry(new_model(limited, small(method, limited)), limited)


@pytest.mark.parametrize("activation", ["relu", "silu"])
def test_cinn_is_invertible(activation):
    torch.manual_seed(1)
    chain = load_robot("ur3")
    model = new_model(chain, small("cinn", chain, activation=activation))
    assert isinstance(model, CINN)
    # the coupling subnetworks use the configured activation
    kinds = {type(m) for m in model.modules()} & {torch.nn.ReLU, torch.nn.SiLU}
    assert kinds == {torch.nn.ReLU if activation == "relu" else torch.nn.SiLU}
    # perturb the zero-initialized last layers so the test exercises non-trivial couplings
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "subnet" in name:
                p.add_(0.05 * torch.randn_like(p))
    fk = chain.forward(chain.sample_configurations(64, torch.Generator().manual_seed(2)))
    cond = model.encode_targets(fk.position)[None]
    z = torch.randn(1, 64, model.latent_dim)
    y = model.generate(cond, z)  # reverse pass (z, p) -> normalized q
    interior = ((y > 1e-4) & (y < 1 - 1e-4)).all(-1)
    z_back, log_jac = model.forward_density(cond, y)
    assert interior.any()
    torch.testing.assert_close(z_back[0][interior[0]], z[0][interior[0]], atol=1e-4, rtol=1e-4)
    assert torch.isfinite(log_jac).all()


def test_ensemble_covers_both_elbow_branches_of_a_planar_2link_target():
    torch.manual_seed(0)
    chain = planar_arm(2, [0.5, 0.5], limit=math.pi)
    # supervised CVAE on both branches, then every member sees the whole distribution
    model = new_model(chain, small("cemssl", chain, members=4, latent_dim=2))
    trainer = CEMSSLTrainer(model, chain, CEMSSLConfig(iterations=25, epochs=3, samples_per_iteration=1024, lr=2e-3, lr_final=1e-4, eval_every=0, seed=1))
    trainer.run()
    target = torch.tensor([[0.45, 0.35, 0.0]], dtype=torch.float64)
    q = model.sample(target, num_samples=64, generator=torch.Generator().manual_seed(0)).q[0].double()
    err = (chain.forward(q).position - target).norm(dim=-1)
    good = q[err < 0.1]
    assert len(good) >= 16
    elbow = torch.sin(good[:, 1])
    assert (elbow > 0.2).any() and (elbow < -0.2).any(), "samples cover only one elbow branch"


@pytest.mark.parametrize("position_loss", ["squared", "distance", "gauss-newton"])
def test_unsupervised_fk_loss_training_reduces_error(position_loss):
    torch.manual_seed(0)
    chain = planar_arm(3, limit=math.pi / 2)
    model = new_model(chain, small("unsupervised", chain))
    before = evaluate_precision(model, chain, 300).position_error.mean()
    cfg = UnsupervisedConfig(steps=400, batch_size=256, lr=2e-3, lr_final=1e-4, position_loss=position_loss, eval_every=0)
    UnsupervisedTrainer(model, chain, cfg).run()
    after = evaluate_precision(model, chain, 300).position_error.mean()
    assert after * 4 <= before
    for bad in ({"lr": 0.0}, {"lr_final": -1e-5}, {"batch_size": 0}, {"position_loss": "huber"}):
        with pytest.raises(ValueError):
            UnsupervisedConfig(**bad)


@pytest.mark.parametrize("pose", [False, True])
def test_distance_fk_loss_is_the_weighted_tip_distance(pose):
    """The "distance" loss is the root of the squared one (rotation included) and every sample's
    gradient has the same size, whatever its error: far-off samples do not outweigh the rest."""
    chain = load_robot("ur3")
    g = torch.Generator().manual_seed(1)
    q0 = (torch.rand(32, 6, generator=g, dtype=torch.float64) * 2 - 1) * 3
    scale = torch.logspace(-6, -1, 32, dtype=torch.float64)[:, None]  # errors from micrometres to decimetres
    goal = chain.forward(q0 + scale * torch.randn(32, 6, generator=g, dtype=torch.float64))
    rotation = goal.rotation if pose else None
    squared = FKLoss(chain, limit_weight=0.0)(q0, goal.position, rotation)
    q = q0.clone().requires_grad_(True)
    distance = FKLoss(chain, limit_weight=0.0, position_loss="distance")(q, goal.position, rotation)
    s = FKLoss.DISTANCE_SMOOTHING
    assert torch.allclose(distance, torch.sqrt(squared + s * s) - s, rtol=1e-12, atol=0)
    assert torch.all(distance > 0)
    (grad,) = torch.autograd.grad(distance.sum(), q)
    # the task-space gradient of a distance is a unit vector: ||J^T u|| stays within J's singular values
    J = chain.jacobian(q0)
    if not pose:
        u = torch.linalg.lstsq(J[:, :3].transpose(1, 2), grad[..., None]).solution[..., 0]
        d = (chain.forward(q0).position - goal.position).norm(dim=-1)
        assert torch.allclose(u.norm(dim=-1), d / torch.sqrt(d * d + s * s), atol=1e-6)  # 1 but for the smoothing
    ratio = grad.norm(dim=-1).amax() / grad.norm(dim=-1).amin()
    assert ratio < 50, "gradient sizes spread with the error as in the squared loss"
    # with a scale, misses far beyond it weigh in proportion to their error again
    c = 1e-3
    hybrid = FKLoss(chain, limit_weight=0.0, position_loss="distance", distance_scale=c)(q0, goal.position, rotation)
    assert torch.allclose(hybrid, distance.detach() + squared / (2 * c), rtol=1e-12, atol=0)
    # negative, NaN, or a scale on a loss that would ignore it
    bads = ({"distance_scale": -1e-3}, {"position_loss": "distance", "distance_scale": float("nan")}, {"distance_scale": 1e-3}, {"position_loss": "gauss-newton", "distance_scale": 1e-3})
    for bad in bads:
        with pytest.raises(ValueError, match="distance_scale"):
            FKLoss(chain, **bad)
        with pytest.raises(ValueError, match="distance_scale"):
            UnsupervisedConfig(**bad)
        with pytest.raises(ValueError, match="fk_distance_scale"):
            CEMSSLConfig(**{"fk_" + k: v for k, v in bad.items()})


@pytest.mark.parametrize("pose", [False, True])
def test_gauss_newton_fk_loss_steps_along_damped_least_squares(pose):
    """Its gradient is twice the damped least-squares step: half-gradient steps converge quadratically."""
    chain = load_robot("ur3")
    g = torch.Generator().manual_seed(0)
    q0 = (torch.rand(64, 6, generator=g, dtype=torch.float64) * 2 - 1) * 3
    q0 = q0[torch.linalg.svdvals(chain.jacobian(q0)).amin(-1) > 0.02]  # away from singularities: tiny damping is safe
    goal = chain.forward(q0 + 0.05 * torch.randn(len(q0), 6, generator=g, dtype=torch.float64))
    rotation = goal.rotation if pose else None
    loss_fn = FKLoss(chain, limit_weight=0.0, position_loss="gauss-newton", damping=1e-8)
    q = q0.clone().requires_grad_(True)
    grad = torch.autograd.grad(loss_fn(q, goal.position, rotation).sum(), q)[0]
    J = chain.jacobian(q0)[:, : 6 if pose else 3]
    fk = chain.forward(q0)
    if pose:  # rows scaled by sqrt(rotation_weight); the small-angle rotation error is exact to first order
        J = torch.cat([J[:, :3], 0.1**0.5 * J[:, 3:]], dim=1)
    err_p = fk.position - goal.position
    # position-only: the step solves J dq = err exactly (3 equations, 6 unknowns, minimum norm)
    if not pose:
        assert torch.allclose(torch.einsum("bij,bj->bi", J, grad / 2), err_p, atol=1e-7)
    errors = []
    for _ in range(5):
        loss = loss_fn(q, goal.position, rotation).sum()
        (grad,) = torch.autograd.grad(loss, q)
        with torch.no_grad():
            q -= 0.5 * grad
        errors.append((chain.forward(q.detach()).position - goal.position).norm(dim=-1).max().item())
    assert errors[-1] < 1e-9 and errors[-1] < errors[0] * 1e-5
    if pose:
        from cemssl_ik.kinematics.transforms import rotation_angle

        assert rotation_angle(chain.forward(q.detach()).rotation, goal.rotation).max().item() < 1e-8
    with pytest.raises(ValueError, match="position_loss"):
        FKLoss(chain, position_loss="l1")


def test_fk_loss_terms():
    chain = planar_arm(2, [0.5, 0.5], limit=1.0)
    q = torch.tensor([[0.0, 0.0], [1.5, 0.0]], dtype=torch.float64, requires_grad=True)
    target = chain.forward(q.detach()).position
    loss = FKLoss(chain, limit_weight=1.0)(q, target).detach()
    assert loss[0].item() == 0 and loss[1].item() == pytest.approx(0.25)  # 0.5 rad over the +1 rad limit, squared
    obstacle = SphereObstacle((0.5, 0.0, 0.0), radius=0.1, margin=0.0)
    with_obs = FKLoss(chain, limit_weight=0.0, obstacles=[obstacle])(q, target)
    # joint-2 origin sits at the sphere centre for q = 0; moved away for q1 = 1.5
    assert with_obs[0].item() == pytest.approx(0.01) and with_obs[1].item() == 0
    with_obs.sum().backward()
    assert torch.isfinite(q.grad).all()


def test_codec_round_trip_and_target_encoder():
    chain = load_robot("ur3")
    lo, hi = chain.learning_limits()
    q = chain.sample_configurations(100, torch.Generator().manual_seed(0))
    for kind in ("sigmoid", "biternion"):
        codec = JointCodec(lo, hi, chain.periodic, kind)
        torch.testing.assert_close(codec.decode(codec.normalize(q)), q, atol=1e-9, rtol=0)
    enc = TargetEncoder.fit("pose", chain.forward(q).position)
    assert enc.encode(chain.forward(q).position, chain.forward(q).rotation).shape == (100, 9)
    with pytest.raises(ValueError, match="unknown model config key"):
        ModelConfig.from_dict({"method": "cemssl", "widht": 3})
    with pytest.raises(ValueError, match="latent_dim=0"):
        ModelConfig(method="emssl", latent_dim=6)
