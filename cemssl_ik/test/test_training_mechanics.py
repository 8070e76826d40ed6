"""Training mechanics at small scale: best-weight keeping, optimizers and resumption, weight decay, LR
warmup, subnormal flushing, forward-model failures, FK-loss targets, Adam eps, bf16 phases, weight
averaging, the residual stage."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from cemssl_ik.evaluation.precision import evaluate_precision
from cemssl_ik.kinematics import planar_arm
from cemssl_ik.learning import CEMSSLConfig, CEMSSLTrainer, UnsupervisedConfig, UnsupervisedTrainer
from cemssl_ik.learning.forward_model import AnalyticForwardModel, ForwardResult
from conftest import small

from cemssl_ik.models import new_model


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def test_keep_best_restores_the_best_evaluated_weights():
    torch.manual_seed(0)
    chain = planar_arm(3, limit=math.pi / 2)
    model = new_model(chain, small("cemssl", chain))
    cfg = CEMSSLConfig(iterations=12, epochs=2, samples_per_iteration=512, lr=2e-3, lr_final=1e-4, eval_every=3, eval_targets=300, seed=2)
    trainer = CEMSSLTrainer(model, chain, cfg)
    trainer.run()
    evals = [h["eval_error_mean"] for h in trainer.history if h["eval_error_mean"] is not None]
    assert trainer.best_error == min(evals)
    # the weights now in the model are the best evaluation's, whatever the last one was
    assert trainer.evaluate()[0] == pytest.approx(min(evals), rel=1e-6)


def test_trainers_use_fused_adam_and_a_resumed_cemssl_run_continues_exactly():
    torch.manual_seed(0)
    chain = planar_arm(3, [0.4, 0.3, 0.2], limit=math.pi)
    cfg = CEMSSLConfig(iterations=4, epochs=1, samples_per_iteration=128, eval_every=0, seed=3)
    a = CEMSSLTrainer(new_model(chain, small("cemssl", chain)), chain, cfg)
    assert a.optimizer.param_groups[0]["fused"]  # fused kernels on the CPU
    assert UnsupervisedTrainer(new_model(chain, small("cemssl", chain)), chain, UnsupervisedConfig(steps=1)).optimizer.param_groups[0]["fused"]
    a.step()
    a.step()
    # a second trainer restored from the first one's weights and state takes the same next step
    b_model = new_model(chain, small("cemssl", chain))
    b_model.load_state_dict(a.model.state_dict())
    b = CEMSSLTrainer(b_model, chain, cfg)
    b.load_state_tensors(a.state_tensors(), a.iteration, a.history)
    a.step()
    b.step()
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_weight_decay_is_decoupled_and_validated():
    """AdamW: one optimizer step with decay differs from the same step without by lr * wd * w."""
    torch.manual_seed(0)
    chain = planar_arm(3, [0.4, 0.3, 0.2], limit=math.pi)
    init = new_model(chain, small("cemssl", chain)).state_dict()
    lr, wd, after = 1e-2, 0.5, {}
    for decay in (0.0, wd):
        model = new_model(chain, small("cemssl", chain))
        model.load_state_dict(init)
        cfg = CEMSSLConfig(iterations=1, epochs=1, samples_per_iteration=64, training_batch=64, lr=lr, lr_final=lr, exploration_noise=0.0, weight_decay=decay, eval_every=0, seed=5)
        trainer = CEMSSLTrainer(model, chain, cfg)
        assert isinstance(trainer.optimizer, torch.optim.AdamW if decay else torch.optim.Adam)
        assert trainer.optimizer.param_groups[0]["weight_decay"] == decay
        trainer.step()
        after[decay] = {k: v.clone() for k, v in model.state_dict().items()}
    for name, w0 in init.items():
        torch.testing.assert_close(after[0.0][name] - after[wd][name], lr * wd * w0, rtol=1e-4, atol=1e-7)
    assert any((lr * wd * w0).abs().max() > 1e-3 for w0 in init.values())  # the check is not vacuous
    with pytest.raises(ValueError, match="weight_decay"):
        CEMSSLConfig(weight_decay=-1.0)


def test_lr_warmup_ramps_up_to_the_cosine_schedule():
    chain = planar_arm(3, [0.4, 0.3, 0.2], limit=math.pi)
    rates = {}
    for warmup in (0, 4):
        cfg = CEMSSLConfig(iterations=10, epochs=1, samples_per_iteration=32, lr=1e-2, lr_final=1e-4, exploration_noise=0.0, lr_warmup=warmup, eval_every=0, seed=0)
        trainer = CEMSSLTrainer(new_model(chain, small("cemssl", chain)), chain, cfg)
        rates[warmup] = []
        for _ in range(cfg.iterations):
            rates[warmup].append(trainer.current_lr())
            trainer.step()
            assert trainer.optimizer.param_groups[0]["lr"] == rates[warmup][-1]  # the rate the step used
    for k, (plain, warm) in enumerate(zip(rates[0], rates[4])):
        assert warm == pytest.approx(plain * min(1.0, (k + 1) / 4), rel=1e-12)
    assert rates[4][0] == pytest.approx(1e-2 / 4)
    with pytest.raises(ValueError, match="lr_warmup"):
        CEMSSLConfig(lr_warmup=-1)


def test_training_flushes_subnormals_and_restores_the_default():
    from cemssl_ik.learning.schedule import flush_denormals

    sub = torch.tensor([1e-39], dtype=torch.float32)  # below float32's smallest normal number
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    assert (sub * 1.0).item() != 0
    with flush_denormals():
        with flush_denormals():
            assert (sub * 1.0).item() == 0
        assert (sub * 1.0).item() == 0  # still on after the inner exit
    assert (sub * 1.0).item() != 0
    chain = planar_arm(3, [0.4, 0.3, 0.2], limit=math.pi)
    seen = []
    cfg = CEMSSLConfig(iterations=2, epochs=1, samples_per_iteration=64, eval_every=0, seed=0)
    CEMSSLTrainer(new_model(chain, small("cemssl", chain)), chain, cfg).run(lambda stats: seen.append((sub * 1.0).item()))
    uns = UnsupervisedTrainer(new_model(chain, small("cemssl", chain)), chain, UnsupervisedConfig(steps=2, eval_every=0))
    uns.run(lambda step, info, err: seen.append((sub * 1.0).item()))
    assert seen == [0.0] * 4
    assert (sub * 1.0).item() != 0


class _FlakyForwardModel:
    """Exact FK that fails on every third sample: NaN pose and joints, valid False (a robot that
    timed out or a simulator that diverged)."""

    def __init__(self, chain) -> None:
        self.inner = AnalyticForwardModel(chain)

    def evaluate(self, q: torch.Tensor) -> ForwardResult:
        res = self.inner.evaluate(q)
        bad = torch.arange(len(q)) % 3 == 0
        nan = float("nan")
        return ForwardResult(
            res.q.masked_fill(bad[:, None], nan),
            res.position.masked_fill(bad[:, None], nan),
            res.rotation.masked_fill(bad[:, None, None], nan),
            res.valid & ~bad,
        )


@pytest.mark.parametrize(("fk_loss_targets", "fk_loss_weight"), [("desired", 0.0), ("reached", 1.0)])
def test_cemssl_trains_through_forward_model_failures(fk_loss_targets, fk_loss_weight):
    torch.manual_seed(0)
    chain = planar_arm(3, limit=math.pi / 2)
    model = new_model(chain, small("cemssl", chain))
    before = evaluate_precision(model, chain, 500, seed=3).position_error.mean()
    cfg = CEMSSLConfig(
        iterations=20, epochs=3, samples_per_iteration=1024, lr=2e-3, lr_final=1e-4, exploration_noise=0.25, exploration_fraction=0.5, fk_loss_weight=fk_loss_weight, fk_loss_targets=fk_loss_targets, eval_every=0, seed=0
    )
    trainer = CEMSSLTrainer(model, chain, cfg, forward_model=_FlakyForwardModel(chain))
    trainer.run()
    assert all(h["valid_fraction"] == pytest.approx(2 / 3, abs=1e-3) for h in trainer.history)
    assert all(math.isfinite(h["train_loss"]) for h in trainer.history)
    assert all(torch.isfinite(p).all() for p in model.parameters()), "a failed sample reached the weights"
    after = evaluate_precision(model, chain, 500, seed=3).position_error.mean()
    assert after * 5 <= before, f"mean error {before * 1e3:.1f} mm -> {after * 1e3:.1f} mm"


def test_fk_loss_targets_is_validated():
    with pytest.raises(ValueError, match="fk_loss_targets"):
        CEMSSLConfig(fk_loss_targets="nowhere")


def test_fk_loss_on_reached_targets_shares_the_cemssl_pass():
    torch.manual_seed(0)
    chain = planar_arm(3, limit=math.pi / 2)
    init = new_model(chain, small("cemssl", chain)).state_dict()
    trainers, calls = {}, {}
    for where in ("desired", "reached"):
        model = new_model(chain, small("cemssl", chain))
        model.load_state_dict(init)
        cfg = CEMSSLConfig(epochs=1, samples_per_iteration=256, training_batch=64, fk_loss_weight=10.0, fk_loss_targets=where, exploration_noise=0.0, eval_every=0, seed=1)
        trainers[where] = CEMSSLTrainer(model, chain, cfg)
    data, _ = trainers["desired"].sample_phase()
    trainers["reached"].sample_phase()  # the same draws: both trainers' RNGs stay in step
    # with the desired targets set to the reached ones, both forms are the same loss
    data["desired_position"] = data["reached_position"].double().clone()
    losses = {}
    for where, tr in trainers.items():
        generate, calls[where] = tr.model.generate, 0

        def counted(*args, _generate=generate, _where=where):
            calls[_where] += 1
            return _generate(*args)

        tr.model.generate = counted
        losses[where] = tr.train_phase(data)
    assert losses["reached"] == pytest.approx(losses["desired"], rel=1e-5)
    for pa, pb in zip(trainers["desired"].model.parameters(), trainers["reached"].model.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)
    # one network pass per training step instead of two (256 samples / batch 64 = 4 steps)
    assert (calls["desired"], calls["reached"]) == (8, 4)


def test_adam_eps_reaches_the_optimizers_and_unstalls_tiny_gradients():
    from cemssl_ik.learning.schedule import adam

    # a loss whose gradients are ~1e-11, like a sub-0.1 mm model's FK loss in m^2
    def fit(eps: float) -> float:
        w = torch.nn.Parameter(torch.zeros(4))
        opt = adam([w], 0.05, eps=eps)
        for _ in range(100):
            loss = 1e-12 * ((w - 1.0) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float((w.detach() - 1.0).abs().max())

    assert fit(1e-8) > 0.99  # torch's default eps swamps the gradient: w barely moves
    assert fit(1e-16) < 0.1  # Adam's scale invariance restored
    chain = planar_arm(3, [0.4, 0.3, 0.2], limit=math.pi)
    uns = UnsupervisedTrainer(new_model(chain, small("cemssl", chain)), chain, UnsupervisedConfig(steps=1, eval_every=0, adam_eps=1e-16))
    assert uns.optimizer.param_groups[0]["eps"] == 1e-16
    cem = CEMSSLTrainer(new_model(chain, small("cemssl", chain)), chain, CEMSSLConfig(iterations=1, adam_eps=1e-15))
    assert cem.optimizer.param_groups[0]["eps"] == 1e-15
    for bad in (0.0, -1e-8, float("nan")):
        with pytest.raises(ValueError, match="adam_eps"):
            UnsupervisedConfig(adam_eps=bad)
        with pytest.raises(ValueError, match="adam_eps"):
            CEMSSLConfig(adam_eps=bad)


def test_bf16_hidden_products_run_in_the_early_part_of_fk_loss_training_only(monkeypatch):
    from cemssl_ik.models.networks import BatchedLinear, hidden_precision

    torch.manual_seed(0)
    chain = planar_arm(3, limit=math.pi / 2)
    model = new_model(chain, small("cemssl", chain, hidden=(128, 128, 128)))
    from cemssl_ik.learning.targets import sample_targets

    cond = model.encode_targets(sample_targets(chain, 2 * 64, torch.Generator().manual_seed(1)).position, None).reshape(2, 64, -1)
    z = torch.randn(2, 64, model.latent_dim).to(model.dtype)
    full = model.generate(cond, z).detach()
    with hidden_precision(model, torch.bfloat16):
        low = model.generate(cond, z)
        low.square().sum().backward()
    low = low.detach()
    # the products ran in bfloat16 (8 significant bits), not in float32, and close to it
    assert not torch.equal(low, full)
    assert float((low - full).abs().max()) < 0.05 * float(full.abs().max())
    # weights, their gradients and the output stay float32; input/output layers are never cast
    assert low.dtype == torch.float32 and all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)
    linears = [m for m in model.modules() if isinstance(m, BatchedLinear)]
    assert all(m.compute_dtype is None for m in linears)
    assert torch.equal(model.generate(cond, z).detach(), full)  # the context restored full precision

    # a training run casts in the first bf16_fraction of its steps only, and still learns
    seen: list = []
    forward = BatchedLinear.forward

    def spy(self, x):
        seen.append(self.compute_dtype)
        return forward(self, x)

    monkeypatch.setattr(BatchedLinear, "forward", spy)
    before = evaluate_precision(model, chain, 300).position_error.mean()
    seen.clear()
    cfg = UnsupervisedConfig(steps=400, batch_size=256, lr=2e-3, lr_final=1e-4, eval_every=0, bf16_fraction=0.5)
    UnsupervisedTrainer(model, chain, cfg).run()
    per_step = len(linears)
    assert len(seen) == 400 * per_step
    steps_low = [s for s in range(400) if torch.bfloat16 in seen[s * per_step : (s + 1) * per_step]]
    assert steps_low == list(range(200))  # progress = step / (steps - 1) < 0.5
    assert seen[:per_step] == [None] + [torch.bfloat16] * (per_step - 2) + [None]
    after = evaluate_precision(model, chain, 300).position_error.mean()
    assert after * 4 <= before
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="bf16_fraction"):
            UnsupervisedConfig(bf16_fraction=bad)


def test_fk_loss_training_keeps_a_moving_average_of_the_weights_and_ends_with_the_better(monkeypatch):
    torch.manual_seed(0)
    chain = planar_arm(3, limit=math.pi / 2)
    model = new_model(chain, small("unsupervised", chain))
    decay = 0.9
    cfg = UnsupervisedConfig(steps=60, batch_size=128, lr=5e-3, lr_final=1e-3, eval_every=20, ema_decay=decay)
    trainer = UnsupervisedTrainer(model, chain, cfg)
    weight = next(model.generator_parameters())
    expected: list[torch.Tensor] = []

    def follow(step, info, err):  # the average is updated after every step, before the callback
        w = weight.detach().clone()
        expected.append(w if not expected else decay * expected[-1] + (1 - decay) * w)
        assert torch.allclose(next(trainer.average.module.generator_parameters()), expected[-1], atol=1e-6)

    # keep the trained weights at the end, to compare them with the result
    keep = trainer._keep_better_of_average
    trained_weights: list[torch.Tensor] = []
    monkeypatch.setattr(trainer, "_keep_better_of_average", lambda t, a: (trained_weights.append(weight.detach().clone()), keep(t, a)))
    assert trainer.run(follow) == "steps" and len(expected) == 60
    # held-out rows carry both errors; the callback's error is the average's
    assert [r["step"] for r in trainer.history] == [20, 40, 60]
    assert all(r["eval_error_mean_average"] > 0 and r["eval_error_mean"] > 0 for r in trainer.history)
    res = trainer.average_result
    assert res["kept"] == ("average" if res["eval_error_mean_average"] <= res["eval_error_mean_trained"] else "trained")
    assert res["eval_error_mean_trained"] == pytest.approx(trainer.history[-1]["eval_error_mean"])
    if res["kept"] == "average":
        assert torch.allclose(weight.detach(), expected[-1], atol=1e-6) and not torch.equal(weight.detach(), trained_weights[0])
    else:
        assert torch.equal(weight.detach(), trained_weights[0])
    # the better one is copied into the model: a worse average leaves the trained weights alone
    before = [p.detach().clone() for p in model.parameters()]
    trainer._keep_better_of_average(0.5, 0.6)
    assert trainer.average_result["kept"] == "trained" and all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    trainer._keep_better_of_average(0.6, 0.5)
    assert trainer.average_result["kept"] == "average"
    assert all(torch.equal(a, p) for a, p in zip(trainer.average.module.parameters(), model.parameters()))
    # without a decay nothing is averaged
    plain = UnsupervisedTrainer(model, chain, UnsupervisedConfig(steps=2, batch_size=16, eval_every=0))
    assert plain.run() == "steps" and plain.average is None and plain.average_result is None
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="ema_decay"):
            UnsupervisedConfig(ema_decay=bad)


def test_cemssl_bf16_fraction_casts_the_training_phase_of_early_iterations_only(monkeypatch):
    from cemssl_ik.models.networks import BatchedLinear

    torch.manual_seed(0)
    chain = planar_arm(3, limit=math.pi / 2)
    model = new_model(chain, small("cemssl", chain, hidden=(64, 64, 64)))
    phase = ["idle"]
    seen: list[tuple[int, str, object]] = []
    forward, sample, train = BatchedLinear.forward, CEMSSLTrainer.sample_phase, CEMSSLTrainer._train_epochs

    def spy_forward(self, x):
        seen.append((trainer.iteration, phase[0], self.compute_dtype))
        return forward(self, x)

    def in_phase(name, fn):
        def wrapped(self, *a):
            phase[0] = name
            try:
                return fn(self, *a)
            finally:
                phase[0] = "idle"

        return wrapped

    monkeypatch.setattr(BatchedLinear, "forward", spy_forward)
    monkeypatch.setattr(CEMSSLTrainer, "sample_phase", in_phase("sample", sample))
    monkeypatch.setattr(CEMSSLTrainer, "_train_epochs", in_phase("train", train))
    cfg = CEMSSLConfig(iterations=4, epochs=1, samples_per_iteration=256, eval_every=1, keep_best=False, bf16_fraction=0.5, fk_loss_weight=10.0)
    trainer = CEMSSLTrainer(model, chain, cfg)
    trainer.run()
    low = {(it, ph) for it, ph, dt in seen if dt == torch.bfloat16}
    # progress = iteration / (iterations - 1): iterations 0 and 1 are below 0.5, and only their
    # training phases (MSE and FK-loss passes) cast; sampling and evaluation stay float32
    assert low == {(0, "train"), (1, "train")}
    assert {(it, ph) for it, ph, _ in seen} >= {(i, p) for i in range(4) for p in ("sample", "train")}
    assert all(m.compute_dtype is None for m in model.modules() if isinstance(m, BatchedLinear))
    assert all(math.isfinite(h["train_loss"]) for h in trainer.history)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="bf16_fraction"):
            CEMSSLConfig(bf16_fraction=bad)


def test_a_residual_stage_starts_at_zero_and_trains_alone_on_the_first_networks_error():
    """with_residual_stage leaves the outputs as they were; train_residual moves only the stage (the first
    network bit for bit unchanged, without gradients) and lowers the error; bad configs are refused."""
    from cemssl_ik.models import select_members, with_residual_stage

    torch.manual_seed(0)
    chain = planar_arm(3, limit=math.pi / 2)
    model = new_model(chain, small("cemssl", chain, output="sigmoid", activation="silu", hidden=(64, 64)))
    UnsupervisedTrainer(model, chain, UnsupervisedConfig(steps=300, batch_size=256, lr=2e-3, lr_final=1e-4, position_loss="distance", eval_every=0)).run()
    refined = with_residual_stage(model, (32, 32), scale=0.1)
    assert refined.config.residual_stage == (32, 32) and with_residual_stage(refined, (32, 32), scale=0.1) is refined
    pos = chain.forward(chain.sample_configurations(64, torch.Generator().manual_seed(1))).position
    z = torch.randn(64, 4, model.latent_dim)
    assert torch.equal(model.sample(pos, num_samples=4, z=z).q, refined.sample(pos, num_samples=4, z=z).q)
    first = {k: v.clone() for k, v in refined.state_dict().items() if not k.startswith("residual_net.")}
    before = evaluate_precision(refined, chain, 500, seed=3).position_error.mean()
    tr = UnsupervisedTrainer(refined, chain, UnsupervisedConfig(steps=300, batch_size=256, lr=3e-3, lr_final=1e-5, position_loss="distance", adam_eps=1e-16, eval_every=0, train_residual=True))
    assert {id(p) for p in tr.params} == {id(p) for p in refined.residual_net.parameters()}
    tr.run()
    after = evaluate_precision(refined, chain, 500, seed=3).position_error.mean()
    assert after < 0.8 * before, f"{before * 1e3:.3f} mm -> {after * 1e3:.3f} mm"
    for k, v in first.items():
        assert torch.equal(refined.state_dict()[k], v), k
    assert all(p.grad is None and p.requires_grad for p in refined.net.parameters())  # frozen per step only
    # members are selected together with their stage
    one = select_members(refined, [1])
    assert torch.equal(one.sample(pos, num_samples=1, z=z[:, 1:2]).q, refined.sample(pos, num_samples=2, z=z[:, :2]).q[:, 1:2])
    with pytest.raises(ValueError, match="already has a residual stage"):
        with_residual_stage(refined, (16,))
    with pytest.raises(ValueError, match="no residual stage"):
        UnsupervisedTrainer(model, chain, UnsupervisedConfig(train_residual=True))
    # every method takes a stage: the generative models' samples keep their spread, the stage makes them precise
    for method in ("cvae", "cgan", "cinn"):
        base = new_model(chain, small(method, chain))
        staged = with_residual_stage(base, (32,), scale=0.1)
        zz = torch.randn(64, 4, base.latent_dim)
        assert torch.equal(base.sample(pos, num_samples=4, z=zz).q, staged.sample(pos, num_samples=4, z=zz).q), method
        assert {id(p) for p in staged.generator_parameters()} >= {id(p) for p in staged.residual_net.parameters()}
        e0 = evaluate_precision(staged, chain, 200, seed=3).position_error.mean()
        UnsupervisedTrainer(staged, chain, UnsupervisedConfig(steps=150, batch_size=128, lr=3e-3, lr_final=1e-4, eval_every=0, train_residual=True)).run()
        e1 = evaluate_precision(staged, chain, 200, seed=3).position_error.mean()
        assert e1 < 0.8 * e0, f"{method}: {e0 * 1e3:.1f} mm -> {e1 * 1e3:.1f} mm"
    for bad in ({"residual_stage": (8, 0)}, {"residual_scale": 0.0}, {"residual_scale": float("nan")}):
        with pytest.raises(ValueError):
            small("cemssl", chain, **bad)


def test_an_anchored_fk_fine_tune_keeps_each_sample_near_its_start_and_still_lowers_the_error():
    """anchor_weight pulls every answer towards the starting model's answer for the same target and
    latent: the samples move less than under the FK loss alone, the error still falls, and the
    frozen copy is not trained."""
    torch.manual_seed(0)
    chain = planar_arm(3, limit=math.pi / 2)
    start = new_model(chain, small("cgan", chain))
    pos = chain.forward(chain.sample_configurations(200, torch.Generator().manual_seed(1))).position
    z = torch.randn(200, 4, start.latent_dim)
    q_start = start.sample(pos, num_samples=4, z=z).q
    e0 = evaluate_precision(start, chain, 300, seed=3).position_error.mean()
    moved = {}
    for weight in (0.0, 10.0):
        model = copy.deepcopy(start)
        tr = UnsupervisedTrainer(model, chain, UnsupervisedConfig(steps=200, batch_size=128, lr=1e-3, lr_final=1e-4, eval_every=0, anchor_weight=weight))
        assert (tr.anchor is None) == (weight == 0)
        tr.run()
        e1 = evaluate_precision(model, chain, 300, seed=3).position_error.mean()
        assert e1 < 0.7 * e0, f"anchor {weight}: {e0 * 1e3:.1f} -> {e1 * 1e3:.1f} mm"
        moved[weight] = float((model.sample(pos, num_samples=4, z=z).q - q_start).abs().mean())
        if weight:
            assert all(torch.equal(a, b) for a, b in zip(tr.anchor.state_dict().values(), start.state_dict().values()))
    assert moved[10.0] < 0.8 * moved[0.0], moved
    with pytest.raises(ValueError, match="anchor_weight"):
        UnsupervisedConfig(anchor_weight=-1.0)
