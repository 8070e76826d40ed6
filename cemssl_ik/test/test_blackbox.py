"""Black-box CEMSSL: learns through a forward model it only calls (an arm whose links differ from the
nominal chain), within its evaluation budget, without NaNs from failed samples, keeping the best weights."""

from __future__ import annotations

import math

import pytest
import torch
from cemssl_ik.kinematics import load_robot
from cemssl_ik.kinematics.perturbation import KinematicPerturbation, perturbed_chain, uniform_link_change
from cemssl_ik.learning import AnalyticForwardModel
from cemssl_ik.learning.adaptation import AdaptationConfig, Adapter, LearnGoal, LoggedForwardModel
from cemssl_ik.learning.blackbox import BlackBoxCEMSSL, BlackBoxConfig
from cemssl_ik.learning.forward_model import ForwardResult
from cemssl_ik.learning.sample_log import SampleLog
from cemssl_ik.solver import refined_answers

from cemssl_ik.models import load_checkpoint

UR3 = load_robot("ur3")
LONGER = perturbed_chain(UR3, KinematicPerturbation(link_length_changes=uniform_link_change(UR3, 0.05)))


class CountingArm:
    """The +5 cm arm behind the forward-model protocol: counts calls, never gives gradients, and
    fails (NaN, invalid) on every ``fail_every``-th sample."""

    def __init__(self, fail_every: int = 0) -> None:
        self.inner, self.calls, self.fail_every = AnalyticForwardModel(LONGER), 0, fail_every

    def evaluate(self, q: torch.Tensor) -> ForwardResult:
        self.calls += len(q)
        r = self.inner.evaluate(q.detach())
        if not self.fail_every:
            return r
        bad = torch.arange(len(q)) % self.fail_every == 0
        return ForwardResult(r.q, torch.where(bad[:, None], math.nan, r.position), r.rotation, r.valid & ~bad)


def shipped_position_model():
    model, _ = load_checkpoint("ur3_fkloss_position", UR3)
    return model


def test_adapts_the_shipped_model_to_longer_links_within_the_budget():
    arm = CountingArm(fail_every=7)
    trainer = BlackBoxCEMSSL(shipped_position_model(), UR3, BlackBoxConfig(samples_per_iteration=800, max_evaluations=3000, eval_targets=300), arm)
    reason = trainer.run()
    assert reason == "evaluations" and arm.calls == trainer.evaluations <= 3000
    assert trainer.initial_error > 0.1  # the links are 5 cm longer: decimetres off before
    assert trainer.best_error < trainer.initial_error / 10 and trainer.best_iteration >= 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert trainer.summary()["weights_survived"] and trainer.summary()["forward_evaluations"] == arm.calls
    assert 0.5 < trainer.history[0]["valid_fraction"] < 1.0  # the failed samples were dropped, not trained on


def test_keep_best_restores_the_starting_weights_when_training_hurts():
    model = shipped_position_model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = BlackBoxCEMSSL(model, UR3, BlackBoxConfig(iterations=1, samples_per_iteration=200, epochs=3, lr=0.5, lr_final=0.5, eval_targets=100), AnalyticForwardModel(UR3))
    trainer.run()
    assert trainer.history[-1]["eval_error_mean"] > trainer.initial_error  # lr 0.5 wrecks a precise model
    assert trainer.best_iteration == 0 and not trainer.summary()["weights_survived"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in start.items())


def test_exploration_and_learning_rate_follow_the_budget_actually_used():
    cfg = BlackBoxConfig(iterations=1000, max_evaluations=10_000, exploration_noise=0.2, exploration_fraction=0.5, lr=1e-3, lr_final=1e-5)
    trainer = BlackBoxCEMSSL(shipped_position_model(), UR3, cfg, AnalyticForwardModel(UR3))
    assert trainer.current_exploration() == pytest.approx(0.2) and trainer.current_lr() == pytest.approx(1e-3)
    trainer.evaluations = 2500  # a quarter of the evaluation budget, whatever the iteration count
    assert trainer.current_exploration() == pytest.approx(0.1)
    trainer.evaluations = 10_000
    assert trainer.current_exploration() == 0.0 and trainer.current_lr() == pytest.approx(1e-5)


def test_task_space_term_weighs_joint_errors_by_how_far_they_move_the_tool():
    """With ``task_weight`` the loss of a sample grows with the tool displacement of the answer's
    error, not with its size in joint space: a joint step along the nominal Jacobian's null space
    costs (almost) nothing, the same-sized step that moves the tool costs what the Jacobian says."""
    model = shipped_position_model()
    cfg = BlackBoxConfig(samples_per_iteration=64, epochs=1, training_batch=64, lr=1e-12, lr_final=1e-12, task_weight=1.0, keep_best=False, eval_every=0)
    trainer = BlackBoxCEMSSL(model, UR3, cfg, AnalyticForwardModel(UR3))
    trainer.sample()
    r = trainer.replay[0]
    assert r["jacobian"].shape[2:] == (3, 6)  # kept without the projection: the task term needs it
    answer = trainer._infer(r["position"], r["rotation"], r["z"].to(model.dtype))
    J = r["jacobian"]
    step = torch.linalg.svd(J).Vh  # rows 3..5: null-space directions of each sample's Jacobian
    losses = {}
    for name, direction in (("null", step[..., 4, :]), ("task", step[..., 0, :])):
        r["q"] = answer + 0.01 * direction
        trainer.config.task_weight = 0.0
        mse = trainer.train()
        trainer.config.task_weight = 1.0
        losses[name] = trainer.train() - mse  # the task term alone (lr 1e-12: the weights do not move)
    moved = (J @ (0.01 * step[..., 0, :]).unsqueeze(-1)).squeeze(-1).norm(dim=-1) * 100  # cm
    assert losses["null"] < 1e-6 * losses["task"]
    assert losses["task"] == pytest.approx(float(moved.pow(2).mean()) * model.num_members, rel=0.05)


def test_grown_targets_follow_the_measured_reach_and_no_farther():
    cfg = BlackBoxConfig(samples_per_iteration=400, targets="grown", grown_share=0.5, keep_best=False, eval_every=0)
    nominal = BlackBoxCEMSSL(shipped_position_model(), UR3, cfg, AnalyticForwardModel(UR3))
    longer = BlackBoxCEMSSL(shipped_position_model(), UR3, cfg, AnalyticForwardModel(LONGER))
    first, _ = longer._desired(2000)  # nothing measured yet: the workspace sampler's targets
    centre = UR3.forward(UR3.sample_configurations(20_000, torch.Generator().manual_seed(3))).position.mean(0)

    def reach(p):
        return float(torch.quantile((p - centre).norm(dim=-1), 0.99))

    for trainer in (nominal, longer):
        for _ in range(3):
            trainer.sample()  # measured poses join the replay set
    grown_nominal, _ = nominal._desired(2000)
    grown_longer, _ = longer._desired(2000)
    measured = torch.cat([r["position"].reshape(-1, 3) for r in longer.replay])
    assert reach(grown_nominal) < 1.02 * reach(first)  # the nominal arm reaches no farther than its sampler
    assert reach(grown_longer) > 1.1 * reach(first)  # the longer arm's targets follow it out...
    assert reach(grown_longer) < 1.02 * reach(measured)  # ...as far as it was measured to reach


def test_reached_targets_come_from_earlier_samples():
    trainer = BlackBoxCEMSSL(shipped_position_model(), UR3, BlackBoxConfig(samples_per_iteration=100, targets="reached", keep_best=False, eval_every=0), AnalyticForwardModel(LONGER))
    trainer.sample()
    reached = trainer.replay[0]["position"].reshape(-1, 3)
    position, _ = trainer._desired(50)
    assert all(bool((reached - p).norm(dim=-1).min() == 0) for p in position)


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(samples_per_iteration=0), "samples_per_iteration"),
        (dict(lr=math.nan), "lr"),
        (dict(targets="anywhere"), "targets"),
        (dict(keep_best=True, eval_every=0), "keep_best"),
        (dict(exploration_fraction=2.0), "exploration"),
        (dict(max_evaluations=-1), "max_evaluations"),
        (dict(task_weight=-1.0), "task_weight"),
        (dict(adam_eps=0.0), "adam_eps"),
        (dict(grown_share=1.5), "grown_share"),
        (dict(task_weight=math.inf), "task_weight"),
    ],
)
def test_bad_configs_are_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        BlackBoxConfig(**fields)


def test_robot_strategy_adapts_through_black_box_cemssl(tmp_path):
    log = SampleLog.open(tmp_path / "samples.jsonl", dof=6)
    robot = LoggedForwardModel(AnalyticForwardModel(LONGER), log)
    adapter = Adapter(shipped_position_model(), UR3, robot, log, tmp_path, AdaptationConfig(eval_targets=40, train_minutes=5.0), refine=refined_answers)
    out = adapter.run(LearnGoal("robot", max_moves=1500, output="robot"))
    assert out.success, out.message
    assert out.error_after_mm < out.error_before_mm / 3
    assert math.isfinite(out.refined_error_mm)  # refined answers (nominal chain) measured on the arm too
    kinds = {s.kind for s in log.samples}
    assert {"cemssl", "evaluate"} <= kinds
    assert sum(s.kind == "cemssl" for s in log.samples) <= 1500  # the goal's move budget
    assert load_checkpoint(out.checkpoint.removesuffix(".safetensors"), UR3)[1].metadata["training"]["training"]["phase"] == "blackbox_cemssl"
    # the same goal again (as after a crash): continues from the last checkpoint, and the moves
    # already made count against the budget, so none is made for training
    made = sum(s.kind == "cemssl" for s in log.samples)
    messages = []
    again = Adapter(shipped_position_model(), UR3, robot, log, tmp_path, AdaptationConfig(eval_targets=40), progress=lambda p: messages.append(p.message))
    out2 = again.run(LearnGoal("robot", max_moves=1500, output="robot"))
    assert out2.success and any(m.startswith("resuming from robot.") for m in messages)
    assert sum(s.kind == "cemssl" for s in log.samples) == made and out2.iterations == 0
    assert out2.error_before_mm < out.error_before_mm / 3  # the adapted model, not the shipped one
    log.close()


def test_cemssl_exploration_decays_over_the_time_budget_of_a_time_limited_run():
    """A run of many nominal iterations that stops on its time budget anneals over the time used."""
    import time

    from cemssl_ik.learning.cemssl import CEMSSLConfig, CEMSSLTrainer

    trainer = CEMSSLTrainer(shipped_position_model(), UR3, CEMSSLConfig(iterations=100_000, exploration_noise=0.25, exploration_fraction=0.5, max_seconds=100.0))
    assert trainer.current_exploration() == pytest.approx(0.25)
    trainer._started = time.perf_counter() - 25.0  # a quarter of the time budget spent
    assert trainer.current_exploration() == pytest.approx(0.125, abs=1e-3)
    trainer._started = time.perf_counter() - 60.0
    assert trainer.current_exploration() == 0.0
