"""Checkpoints: exact round trip, robot verification, corrupt files refused, no pickle anywhere."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from cemssl_ik.kinematics import chain_from_urdf, load_robot, planar_arm

from cemssl_ik.models import CheckpointError, ModelConfig, load_checkpoint, new_model, save_checkpoint


def _model(method="cemssl", chain=None, **extra):
    chain = chain or load_robot("ur3")
    kw = dict(method=method, latent_dim=6, members=2, hidden=(32, 32), output="biternion") | extra
    if method == "cinn":
        kw.update(members=1, output="sigmoid", coupling_blocks=2, coupling_hidden=16)
    if method in ("cvae", "cgan"):
        kw.update(members=1)
    model = new_model(chain, ModelConfig(**kw))
    with torch.no_grad():  # non-trivial weights everywhere (CINN subnets start at zero)
        for name, p in model.named_parameters():
            if "perm" not in name:
                p.add_(0.01 * torch.randn_like(p))
    return chain, model


@pytest.mark.parametrize(
    "method,extra", [("cemssl", {}), ("cvae", {}), ("cgan", {}), ("cinn", {}), ("cemssl", {"base_symmetry": True}), ("cemssl", {"residual_stage": (16, 16), "residual_scale": 1e-3}), ("cemssl", {"output": "sigmoid", "residual_stage": (16,)})]
)
def test_round_trip_reproduces_outputs_exactly(tmp_path, method, extra):
    chain, model = _model(method, **extra)
    path = save_checkpoint(tmp_path / "m", model, chain, {"note": "test"})
    assert path.name == "m.safetensors" and (tmp_path / "m.json").is_file()
    loaded, info = load_checkpoint(tmp_path / "m", chain)
    assert info.metadata["method"] == method and info.training["note"] == "test"
    assert info.metadata["robot"]["joint_names"] == list(chain.joint_names)
    pos = chain.forward(chain.sample_configurations(10, torch.Generator().manual_seed(0))).position
    z = torch.randn(10, 5, 6)
    a = model.eval().sample(pos, num_samples=5, z=z).q
    b = loaded.sample(pos, num_samples=5, z=z).q
    assert torch.equal(a, b)
    assert loaded.config.base_symmetry == bool(extra.get("base_symmetry")) and loaded.target_encoder == model.target_encoder
    assert loaded.config.residual_stage == tuple(extra.get("residual_stage", ())) and loaded.config.residual_scale == extra.get("residual_scale", 1e-5)


def test_other_robot_is_refused(tmp_path):
    chain, model = _model()
    save_checkpoint(tmp_path / "m", model, chain)
    with pytest.raises(CheckpointError, match="trained for robot 'ur3'"):
        load_checkpoint(tmp_path / "m", planar_arm(6))
    with pytest.raises(CheckpointError, match="chain base->tool0 vs base_link->tool0|URDF hash|chain"):
        load_checkpoint(tmp_path / "m", load_robot("ur3", base_link="base"))


def test_corrupt_or_missing_files_are_refused(tmp_path):
    chain, model = _model()
    save_checkpoint(tmp_path / "m", model, chain)
    weights = tmp_path / "m.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-5] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(tmp_path / "m", chain)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "m", chain)
    with pytest.raises(CheckpointError, match="needs both"):
        load_checkpoint(tmp_path / "nothing_here", chain)
    with pytest.raises(CheckpointError, match="not a file, and not a shipped model name"):
        load_checkpoint("no_such_model_name", chain)


def test_unknown_format_version_and_architecture_mismatch(tmp_path):
    chain, model = _model()
    save_checkpoint(tmp_path / "m", model, chain)
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(tmp_path / "m", chain)
    meta["format_version"] = 1
    meta["model_config"]["hidden"] = [64, 64]  # weights are 32 wide
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="architecture"):
        load_checkpoint(tmp_path / "m", chain)


def test_weights_file_is_not_a_pickle(tmp_path):
    chain, model = _model()
    save_checkpoint(tmp_path / "m", model, chain)
    head = (tmp_path / "m.safetensors").read_bytes()[:16]
    assert not head.startswith(b"\x80") and not head.startswith(b"PK")  # neither pickle nor torch zip


def _recipe(tmp_path, name, phases, model=None, finetune=None, robot="planar3"):
    """A recipe file in ``tmp_path`` (cemssl_ik.learning.recipe); returns its path as a string."""
    import yaml

    doc = {"name": name, "robot": robot, "phases": phases, **({"model": model} if model else {}), **({"finetune": finetune} if finetune else {})}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _train(recipe, out, *extra, timeout=300):
    return subprocess.run([sys.executable, "-m", "cemssl_ik.cli", "train", "--recipe", recipe, "--threads", "1", "--output", str(out), *extra], capture_output=True, text=True, timeout=timeout)


def _phase_configs(meta):
    """kind -> resolved config of each phase, from the recipe the checkpoint records."""
    return {p["kind"]: p for p in meta["training"]["recipe_config"]["phases"]}


def test_cli_train_eval_and_resume(tmp_path):
    """`cemssl-ik train` writes a loadable checkpoint; `eval --json` reports the documented fields."""
    out = tmp_path / "p3"
    recipe = _recipe(tmp_path, "p3", [{"kind": "cemssl", "iterations": 3, "epochs": 1, "samples_per_iteration": 128, "eval_every": 0}],
                     model={"members": 2, "hidden": [32, 32], "output": "biternion"})
    run = _train(recipe, out)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "p3.state.safetensors").is_file()
    meta = json.loads((tmp_path / "p3.json").read_text())
    assert meta["training"]["phases"][-1]["iterations"] == 3
    resumed = _train(recipe, out, "--set", "cemssl.iterations=5", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    meta = json.loads((tmp_path / "p3.json").read_text())
    curves = json.loads((tmp_path / "p3.curves.json").read_text())  # the learning curves live in the sidecar
    assert meta["training"]["phases"][-1]["iterations"] == 5 and len(curves["phases"][-1]["history"]) == 5
    ev = subprocess.run([sys.executable, "-m", "cemssl_ik.cli", "eval", "--model", str(out), "--targets", "50", "--samples", "2", "--json"], capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr
    data = json.loads(ev.stdout)
    assert set(data["position_error_mm"]) == {"mean", "median", "p95", "max"}
    assert data["num_targets"] == 50 and data["samples_per_target"] == 2 and 0 <= data["in_limits_fraction"] <= 1
    assert all(math.isfinite(v) for v in data["position_error_mm"].values()) and data["seconds"] > 0
    bad = subprocess.run([sys.executable, "-m", "cemssl_ik.cli", "eval", "--model", str(tmp_path / "missing")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "needs both" in bad.stderr


def test_cli_fkloss_lr_is_separate_from_the_cemssl_lr(tmp_path):
    """An fkloss phase's `lr` sets the FK-loss warm start's rate; CEMSSL keeps its own; a non-positive rate is refused; `bf16_fraction` is recorded and validated."""
    out = tmp_path / "w"
    recipe = _recipe(tmp_path, "w", [{"kind": "fkloss", "steps": 4}, {"kind": "cemssl", "iterations": 2, "epochs": 1, "samples_per_iteration": 64, "lr": 2e-6, "lr_final": 1e-6, "eval_every": 0}],
                     model={"members": 1, "hidden": [16, 16], "output": "biternion"})
    run = _train(recipe, out, "--set", "fkloss.lr=5e-4", "--set", "fkloss.bf16_fraction=0.5")
    assert run.returncode == 0, run.stderr
    meta = json.loads((tmp_path / "w.json").read_text())
    phases, records = _phase_configs(meta), {p["kind"]: p for p in meta["training"]["phases"]}
    assert phases["fkloss"]["lr"] == 5e-4 and records["fkloss"]["steps"] == 4
    assert phases["fkloss"]["bf16_fraction"] == 0.5
    assert phases["cemssl"]["lr"] == 2e-6
    bad = _train(recipe, out, "--set", "fkloss.lr=0", timeout=120)
    assert bad.returncode == 2 and "learning rates must be > 0" in bad.stderr
    bad = _train(recipe, out, "--set", "fkloss.bf16_fraction=1.5", timeout=120)
    assert bad.returncode == 2 and "bf16_fraction must be in [0, 1]" in bad.stderr
    # a removed flag names the recipe key that replaced it
    old = subprocess.run([sys.executable, "-m", "cemssl_ik.cli", "train", "--recipe", recipe, "--warmup-lr", "5e-4"], capture_output=True, text=True, timeout=120)
    assert old.returncode == 2 and "--set fkloss.lr=VALUE" in old.stderr


def test_cli_fk_loss_distance_and_scale_reach_both_phases(tmp_path):
    """`position_loss: distance` with `distance_scale` is recorded (in metres) for the warm start and the CEMSSL term, `ema_decay` for the warm start; a scale without the distance loss and a bad decay are refused."""
    out = tmp_path / "d"
    recipe = _recipe(tmp_path, "d", [
        {"kind": "fkloss", "steps": 4, "position_loss": "distance", "distance_scale": 5e-5, "ema_decay": 0.5},
        {"kind": "cemssl", "iterations": 1, "epochs": 1, "samples_per_iteration": 64, "fk_loss_weight": 10, "fk_position_loss": "distance", "fk_distance_scale": 5e-5, "eval_every": 0},
    ], model={"members": 1, "hidden": [16, 16], "output": "biternion"})
    run = _train(recipe, out)
    assert run.returncode == 0, run.stderr
    meta = json.loads((tmp_path / "d.json").read_text())
    records = {p["kind"]: p for p in meta["training"]["phases"]}
    phases = _phase_configs(meta)
    # the weight average of the warm start is recorded with both errors and the one kept
    assert phases["fkloss"]["ema_decay"] == 0.5 and records["fkloss"]["average"]["kept"] in ("average", "trained")
    assert records["fkloss"]["average"]["eval_error_mean_average"] > 0
    assert phases["fkloss"]["position_loss"] == "distance" and phases["fkloss"]["distance_scale"] == pytest.approx(5e-5)
    assert phases["cemssl"]["fk_position_loss"] == "distance" and phases["cemssl"]["fk_distance_scale"] == pytest.approx(5e-5)
    for flags, message in ((["fkloss.position_loss=squared"], "distance_scale applies to the 'distance' FK loss only"), (["fkloss.distance_scale=-1"], "distance_scale must be >= 0")):
        bad = _train(recipe, out, *[a for f in flags for a in ("--set", f)], timeout=120)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    bad = _train(recipe, out, "--set", "fkloss.ema_decay=1", timeout=120)
    assert bad.returncode == 2 and "ema_decay must be in [0, 1)" in bad.stderr


def prefixed_urdf(prefix: str = "ur_") -> str:
    """The shipped UR3 URDF with every link and joint renamed and the XML re-indented (same kinematics)."""
    from cemssl_ik.resources import find_package_file

    text = find_package_file("urdf/ur3.urdf").read_text()
    for tag in ('<link name="', '<joint name="', '<parent link="', '<child link="'):
        text = text.replace(tag, tag + prefix)
    lines = text.splitlines()
    return "\n".join([lines[0]] + ["    " + line.strip() for line in lines[1:]])


def test_same_kinematics_under_other_names_loads_and_changed_kinematics_is_refused(tmp_path):
    chain, model = _model()
    save_checkpoint(tmp_path / "m", model, chain)
    prefixed = chain_from_urdf(prefixed_urdf(), "ur_base_link", "ur_tool0")
    assert prefixed.joint_names[0] == "ur_shoulder_pan_joint" and prefixed.source_hash != chain.source_hash
    assert prefixed.kinematics_hash == chain.kinematics_hash
    loaded, _ = load_checkpoint(tmp_path / "m", prefixed)
    pos = chain.forward(chain.sample_configurations(4, torch.Generator().manual_seed(0))).position
    z = torch.randn(4, 3, 6)
    assert torch.equal(model.eval().sample(pos, num_samples=3, z=z).q, loaded.sample(pos, num_samples=3, z=z).q)
    # a changed upper-arm length (0.24365 m in ur_description) is another robot, whatever the names
    longer = chain_from_urdf(prefixed_urdf().replace("-0.24365", "-0.25365"), "ur_base_link", "ur_tool0")
    assert longer.kinematics_hash != chain.kinematics_hash
    with pytest.raises(CheckpointError, match="kinematics"):
        load_checkpoint(tmp_path / "m", longer)


def test_prune_drops_an_imprecise_member_and_keeps_the_others_exactly(tmp_path):
    """`cemssl-ik prune`: members far worse than the median are dropped; the rest are bit-identical."""
    from cemssl_ik.learning import UnsupervisedConfig, UnsupervisedTrainer

    from cemssl_ik.models import select_members

    chain = planar_arm(3)
    torch.manual_seed(0)
    model = new_model(chain, ModelConfig(method="unsupervised", latent_dim=2, members=3, hidden=(64, 64), output="biternion"))
    UnsupervisedTrainer(model, chain, UnsupervisedConfig(steps=300, batch_size=128, lr=2e-3, lr_final=1e-4, eval_every=0)).run()
    with torch.no_grad():  # ruin member 1
        for p in model.net.parameters():
            p[1].add_(0.5 * torch.randn_like(p[1]))
    save_checkpoint(tmp_path / "ens", model, chain, {"command": "test"})
    run = subprocess.run(
        [sys.executable, "-m", "cemssl_ik.cli", "prune", "--model", str(tmp_path / "ens"), "--out", str(tmp_path / "pruned"), "--targets", "300", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "member 1: " in run.stdout and "dropped" in run.stdout.splitlines()[1] and "kept 2 of 3" in run.stdout
    pruned, info = load_checkpoint(tmp_path / "pruned", chain)
    assert pruned.num_members == 2 and info.training["pruning"]["kept"] == [0, 2] and info.training["command"] == "test"
    pos = chain.forward(chain.sample_configurations(20, torch.Generator().manual_seed(1))).position
    z = torch.randn(20, 2, 2)
    want = select_members(model, [0, 2]).eval().sample(pos, num_samples=2, z=z).q
    assert torch.equal(pruned.eval().sample(pos, num_samples=2, z=z).q, want)
    assert torch.equal(want[:, 0], model.eval().sample(pos, num_samples=3, z=torch.cat([z[:, :1], z], 1)).q[:, 0])  # member 0 unchanged
    with pytest.raises(ValueError, match="distinct member indices"):
        select_members(model, [0, 0])
    single = subprocess.run([sys.executable, "-m", "cemssl_ik.cli", "prune", "--model", str(tmp_path / "pruned"), "--out", str(tmp_path / "x"), "--max-ratio", "1"], capture_output=True, text=True, timeout=120)
    assert single.returncode == 2 and "--max-ratio must be > 1" in single.stderr


def test_cli_finetunes_a_baseline_with_an_fk_loss_phase_and_cemssl(tmp_path):
    """The unified framework from the CLI: a CVAE pretrained, then fine-tuned by an fkloss phase and CEMSSL iterations (bfloat16 in the first half of them), given the base symmetry; it stays a CVAE."""
    pre = _train(_recipe(tmp_path, "cvae", [{"kind": "pretrain", "steps": 20}], model={"method": "cvae", "members": 1, "hidden": [16, 16], "output": "biternion"}), tmp_path / "cvae")
    assert pre.returncode == 0, pre.stderr
    recipe = _recipe(tmp_path, "ft", [
        {"kind": "fkloss", "steps": 6, "lr": 5e-4},
        {"kind": "cemssl", "iterations": 2, "epochs": 1, "samples_per_iteration": 64, "lr": 1e-4, "eval_every": 1, "exploration_noise": 0.0},
    ], finetune={"parent": str(tmp_path / "cvae"), "base_symmetry": True})
    run = _train(recipe, tmp_path / "ft", "--set", "cemssl.bf16_fraction=0.5")
    assert run.returncode == 0, run.stderr
    meta = json.loads((tmp_path / "ft.json").read_text())
    assert meta["method"] == "cvae" and meta["training"]["parent"]["trained_by"] == "cvae"
    # the parent is referenced by its weights' hash, not by a copy of its record
    assert meta["training"]["parent"]["weights_sha256"] == json.loads((tmp_path / "cvae.json").read_text())["weights_sha256"]
    # base_symmetry gave the pretrained CVAE the symmetry (it had none), kept in the checkpoint
    assert not json.loads((tmp_path / "cvae.json").read_text())["model_config"]["base_symmetry"]
    assert meta["model_config"]["base_symmetry"] and meta["training"]["base_symmetry_added"]
    assert "axis" in meta["target_encoder"]
    phases = [p["kind"] for p in meta["training"]["phases"]]
    assert phases == ["fkloss", "cemssl"]  # no second pretraining: the checkpoint's weights are the start
    warm, cem = meta["training"]["phases"]
    configs = _phase_configs(meta)
    assert warm["steps"] == 6 and configs["fkloss"]["lr"] == 5e-4
    assert cem["iterations"] == 2 and configs["cemssl"]["lr"] == 1e-4 and configs["cemssl"]["bf16_fraction"] == 0.5
    assert cem["initial_eval_error_mean"] is not None  # keep-best weighed the warm phase's result too
    bad = _train(recipe, tmp_path / "ft", "--set", "cemssl.bf16_fraction=2", timeout=120)
    assert bad.returncode == 2 and "bf16_fraction must be in [0, 1]" in bad.stderr


def test_cli_residual_phase_trains_only_the_residual_stage_of_a_finetuned_model(tmp_path):
    """A recipe fine-tuning M with a residual phase: M's network is kept bit for bit, a residual
    stage is added and trained for its steps (its own time budget), and the model gets more
    precise; a stage of no or non-positive widths and a zero rate are refused."""
    model = {"members": 2, "hidden": [32, 32], "activation": "silu", "output": "biternion"}
    pre = _train(_recipe(tmp_path, "m", [{"kind": "fkloss", "steps": 300, "lr": 2e-3, "position_loss": "distance"}], model=model), tmp_path / "m")
    assert pre.returncode == 0, pre.stderr
    assert [p["kind"] for p in json.loads((tmp_path / "m.json").read_text())["training"]["phases"]] == ["fkloss"]  # no CEMSSL phase in the recipe: none run
    residual = {"kind": "residual", "stage": [32, 32], "scale": 0.1, "steps": 300, "lr": 3e-3, "lr_final": 1e-5, "max_seconds": 300, "position_loss": "distance", "adam_eps": 1e-16}
    recipe = _recipe(tmp_path, "r", [residual], finetune={"parent": str(tmp_path / "m")})
    run = _train(recipe, tmp_path / "r")
    assert run.returncode == 0, run.stderr
    assert "[residual] 300/300: held-out mean position error" in run.stderr
    meta = json.loads((tmp_path / "r.json").read_text())
    assert meta["model_config"]["residual_stage"] == [32, 32] and meta["model_config"]["residual_scale"] == 0.1
    (phase,) = meta["training"]["phases"]
    assert phase["residual_stage_added"] == {"hidden": [32, 32], "scale": 0.1}
    config = _phase_configs(meta)["residual"]
    assert phase["kind"] == "residual" and phase["steps"] == 300 and config["train_residual"] and config["max_seconds"] == 300
    assert meta["training"]["trained_by"] == "fkloss+residual"
    chain = planar_arm(3)
    first, _ = load_checkpoint(tmp_path / "m", chain)
    refined, _ = load_checkpoint(tmp_path / "r", chain)
    for name, p in first.state_dict().items():
        assert torch.equal(refined.state_dict()[name], p), name
    assert any(p.abs().sum() > 0 for p in refined.residual_net.output_layer().parameters())

    from cemssl_ik.evaluation.precision import evaluate_precision

    before = evaluate_precision(first, chain, 500, seed=4).position_error.mean()
    after = evaluate_precision(refined, chain, 500, seed=4).position_error.mean()
    assert after < 0.8 * before, f"{before * 1e3:.3f} mm -> {after * 1e3:.3f} mm"
    # a model with a stage refuses another one, before any training
    other = _train(_recipe(tmp_path, "x", [{**residual, "stage": [16], "steps": 5}], finetune={"parent": str(tmp_path / "r")}), tmp_path / "x", timeout=120)
    assert other.returncode == 2 and "already has a residual stage [32, 32]" in other.stderr, other.stderr
    for flags, message in (
        (["residual.stage=[]"], "stage must be non-empty positive widths"),
        (["residual.stage=[32, 0]"], "stage must be non-empty positive widths"),
        (["residual.lr=0"], "learning rates must be > 0"),
    ):
        bad = _train(recipe, tmp_path / "r2", *[a for f in flags for a in ("--set", f)], timeout=120)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
