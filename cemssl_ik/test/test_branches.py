"""Branch classes: labelers, the discrete part of the latent, training per branch, the solver's use of them."""

from __future__ import annotations

import math

import pytest
import torch
from cemssl_ik.evaluation.precision import evaluate_precision
from cemssl_ik.kinematics import artificial_chain, load_robot, planar_arm
from cemssl_ik.kinematics.branches import branch_labeler
from cemssl_ik.kinematics.ur_analytic import URAnalyticIK
from cemssl_ik.learning import CEMSSLConfig, CEMSSLTrainer, UnsupervisedConfig, UnsupervisedTrainer
from cemssl_ik.learning.supervised import SupervisedConfig, SupervisedTrainer
from cemssl_ik.solver import IKSolver, SolverOptions

from cemssl_ik.models import ModelConfig, load_checkpoint, new_model, save_checkpoint


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def test_ur_labels_are_the_closed_form_solution_indices():
    chain = load_robot("ur3")
    q = chain.sample_configurations(200, torch.Generator().manual_seed(0))
    fk = chain.forward(q)
    res = URAnalyticIK("ur3").solve(fk.position, fk.rotation, frame="base_link")
    labels = branch_labeler("ur3")(res.solutions.nan_to_num(0.0))
    idx = torch.arange(8).expand(200, 8)
    assert torch.equal(labels[res.valid], idx[res.valid])
    # 2*pi copies keep their class
    assert torch.equal(branch_labeler("ur3")(q), branch_labeler("ur3")(q + 2 * math.pi))


def test_sin_labels_and_bad_specs():
    lab = branch_labeler("sin:0,2")
    q = torch.tensor([[0.5, 0.0, 0.5], [-0.5, 0.0, 0.5], [0.5, 0.0, -0.5], [-0.5, 9.0, -0.5]])
    assert lab(q).tolist() == [3, 2, 1, 0] and lab.num_classes == 4 and not lab.unique_pose_solution
    for bad in ("sin:", "sin:a", "sin:1,1", "sin:-1", "ur99", ""):
        with pytest.raises(ValueError):
            branch_labeler(bad)
    with pytest.raises(ValueError, match="6-joint"):
        new_model(planar_arm(3), ModelConfig(branches="ur3", latent_dim=0, members=1, hidden=(8,)))
    with pytest.raises(ValueError, match="names joint 5"):
        new_model(planar_arm(3), ModelConfig(branches="sin:5", latent_dim=0, members=1, hidden=(8,)))
    with pytest.raises(ValueError, match="cemssl / emssl"):
        ModelConfig(method="cvae", branches="ur3")
    # the UR classes need that UR model's joints: another 6-joint chain, or another UR size, is refused
    with pytest.raises(ValueError, match="other kinematics"):
        new_model(artificial_chain(6), ModelConfig(branches="ur3", latent_dim=0, members=1, hidden=(8,)))
    with pytest.raises(ValueError, match="other kinematics"):
        new_model(load_robot("ur3"), ModelConfig(branches="ur5", latent_dim=0, members=1, hidden=(8,)))
    new_model(load_robot("ur3"), ModelConfig(branches="ur3", latent_dim=0, members=1, hidden=(8,)))


def test_latent_layout_slot_classes_relabel_and_checkpoint(tmp_path):
    chain = planar_arm(2, [0.5, 0.5])
    model = new_model(chain, ModelConfig(branches="sin:1", latent_dim=3, members=2, hidden=(16,), output="biternion"))
    assert (model.num_classes, model.noise_dim, model.latent_dim) == (2, 3, 5)
    z = model.sample_latent(4, 6, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4, 6, 5) and torch.equal(z[..., :2].sum(-1), torch.ones(4, 6))
    # K slots: every class once per run of C slots, the runs shifted so both members see both classes
    assert model.slot_classes(6).tolist() == [0, 1, 1, 0, 0, 1]
    member = torch.arange(6) % 2
    pairs = {(int(m), int(c)) for m, c in zip(member, model.slot_classes(6))}
    assert pairs == {(0, 0), (0, 1), (1, 0), (1, 1)}
    res = model.sample(torch.tensor([[0.3, 0.4, 0.0]]), num_samples=4, generator=torch.Generator().manual_seed(1))
    assert res.z[0, :, :2].argmax(-1).tolist() == [0, 1, 1, 0]
    q = torch.tensor([[0.1, -1.0], [0.1, 1.0]])
    relabelled = model.relabel(model.with_classes(torch.zeros(2, 3), torch.tensor([1, 0])), q)
    assert relabelled[:, :2].argmax(-1).tolist() == [0, 1]
    # the branch spec travels with the checkpoint and reproduces the outputs
    path = save_checkpoint(tmp_path / "m", model, chain, {})
    loaded, info = load_checkpoint(path, chain)
    assert info.metadata["model_config"]["branches"] == "sin:1"
    zz = model.sample_latent(5, generator=torch.Generator().manual_seed(2))
    cond = model.encode_targets(torch.rand(5, 3, dtype=torch.float64))
    assert torch.equal(model.generate(cond.expand(2, 5, -1), zz.expand(2, 5, -1)), loaded.generate(cond.expand(2, 5, -1), zz.expand(2, 5, -1)))


def test_fk_loss_refuses_branch_models():
    chain = planar_arm(2, [0.5, 0.5])
    model = new_model(chain, ModelConfig(branches="sin:1", latent_dim=0, members=1, hidden=(16,), output="biternion"))
    with pytest.raises(ValueError, match="branch"):
        UnsupervisedTrainer(model, chain, UnsupervisedConfig(steps=1))


def test_each_class_learns_its_elbow_branch_and_cemssl_keeps_them_apart():
    torch.manual_seed(0)
    chain = planar_arm(2, [0.5, 0.5], limit=math.pi)
    model = new_model(chain, ModelConfig(branches="sin:1", latent_dim=0, members=1, hidden=(128, 128), output="biternion"))
    SupervisedTrainer(model, chain, SupervisedConfig(steps=1500, batch_size=256, lr=3e-3, lr_final=1e-4, eval_every=0, seed=0)).run()

    def per_class(m):
        q_true = chain.sample_configurations(500, torch.Generator().manual_seed(5))
        q_true = q_true[torch.sin(q_true[:, 1]).abs() > 0.3]  # away from the straight-arm boundary
        target = chain.forward(q_true).position
        out = []
        for c in (0, 1):
            q = m.sample(target, num_samples=1, classes=torch.tensor([c])).q[:, 0].double()
            err = (chain.forward(q).position - target).norm(dim=-1)
            out.append((float(err.median()), float((branch_labeler("sin:1")(q) == c).double().mean())))
        return out

    before = per_class(model)
    for median_err, accuracy in before:
        assert median_err < 0.03 and accuracy > 0.95, before
    # CEMSSL iterations relabel each sample with the branch it reached: the classes stay apart
    trainer = CEMSSLTrainer(model, chain, CEMSSLConfig(iterations=5, epochs=2, samples_per_iteration=1024, lr=3e-4, lr_final=1e-4, exploration_noise=0.0, eval_every=0, seed=1))
    data, _ = trainer.sample_phase()
    labels = branch_labeler("sin:1")(model.codec.decode(data["target"].double()))
    assert torch.equal(data["z"][..., :2].argmax(-1).cpu(), labels)
    trainer.run()
    for median_err, accuracy in per_class(model):
        assert median_err < 0.03 and accuracy > 0.95
    # model-alone evaluation asks for the branch of the held-out configuration
    rep = evaluate_precision(model, chain, num_targets=300, seed=3)
    assert float(rep.position_error.median()) < 0.03


def test_solver_with_a_ur_branch_model_finds_every_closed_form_solution():
    torch.manual_seed(0)
    chain = load_robot("ur3")
    model = new_model(chain, ModelConfig(target="pose", branches="ur3", latent_dim=0, members=1, hidden=(256, 256), output="biternion"))
    SupervisedTrainer(model, chain, SupervisedConfig(steps=1200, batch_size=256, lr=2e-3, eval_every=0, seed=0)).run()
    q = chain.sample_configurations(60, torch.Generator().manual_seed(9))
    fk = chain.forward(q)
    res = IKSolver(model, chain).solve(fk.position, fk.rotation, options=SolverOptions(num_solutions=16))
    n_analytic = URAnalyticIK("ur3").solve(fk.position, fk.rotation, frame="base_link").valid.sum(1)
    assert (res.num_valid <= n_analytic).all(), "more distinct solutions than the closed form has"
    coverage = (res.num_valid / n_analytic).mean()
    print(f"coverage {coverage:.3f}, complete {(res.num_valid == n_analytic).double().mean():.3f}")
    assert coverage >= 0.9
    ok = res.valid
    assert res.position_error[ok].max() <= 1e-6 and res.orientation_error[ok].max() <= 1e-5
    for b in range(60):  # one solution per branch
        br = res.branch[b][ok[b]]
        assert len(set(br.tolist())) == len(br)


def test_cli_trains_a_branch_model_with_pretraining_and_keeps_the_better_start(tmp_path):
    import json
    import subprocess
    import sys

    import yaml

    out = tmp_path / "p2"
    model = {"branches": "sin:1", "latent_dim": 0, "members": 1, "hidden": [64, 64], "output": "biternion"}

    def recipe(*phases):
        path = tmp_path / "p2.yaml"
        path.write_text(yaml.safe_dump({"name": "p2", "robot": "planar2", "model": model, "phases": list(phases)}))
        return [sys.executable, "-m", "cemssl_ik.cli", "train", "--recipe", str(path), "--threads", "1", "--output", str(out)]

    bad = subprocess.run(recipe({"kind": "fkloss", "steps": 10}), capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "pretrain phase" in bad.stderr
    run = subprocess.run(recipe({"kind": "pretrain", "steps": 400, "eval_every": 40},
                                {"kind": "cemssl", "iterations": 2, "epochs": 1, "samples_per_iteration": 256, "eval_every": 1, "lr": 0.05, "exploration_noise": 0.0}),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    meta = json.loads((tmp_path / "p2.json").read_text())
    assert meta["model_config"]["branches"] == "sin:1"
    phases = [p["kind"] for p in meta["training"]["phases"]]
    assert phases == ["pretrain", "cemssl"]
    cem = meta["training"]["phases"][1]
    assert meta["training"]["recipe_config"]["phases"][1]["exploration_noise"] == 0.0
    start = cem["initial_eval_error_mean"]
    evals = [h["eval_error_mean"] for h in json.loads((tmp_path / "p2.curves.json").read_text())["phases"][1]["history"]]
    # a far too high CEMSSL rate wrecks the pretrained map: the pretrained weights are kept
    assert min(evals) > start and cem["best_eval_error_mean"] is None
    assert not cem["survived"] and meta["training"]["trained_by"] == "regression"  # the CEMSSL iterations left nothing
    ev = subprocess.run([sys.executable, "-m", "cemssl_ik.cli", "eval", "--model", str(out), "--targets", "1000", "--json"], capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["position_error_mm"]["mean"] == pytest.approx(start * 1e3, rel=0.5)
