"""Training recipes: loading and validation, overrides, a tiny run of every shipped recipe, phase kinds
added from outside, and the checkpoint's record of what produced its weights."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml
from cemssl_ik.kinematics import load_robot, planar_arm
from cemssl_ik.learning.pipeline import PHASE_RUNNERS, PhaseOutcome, TrainOptions, register_phase_kind, train_model
from cemssl_ik.learning.recipe import PHASE_KINDS, Recipe, RecipeError, apply_overrides, load_recipe, recipe_names
from cemssl_ik.models.generators import ModelConfig

from cemssl_ik.models import load_checkpoint, new_model, read_metadata, save_checkpoint


def _write(tmp_path, doc, name="r"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc) if isinstance(doc, dict) else doc)
    return path


BASE = {"name": "r", "robot": "planar3", "model": {"members": 1, "hidden": [16, 16], "output": "biternion"}, "phases": [{"kind": "fkloss", "steps": 5}, {"kind": "cemssl", "iterations": 2}]}


def test_a_recipe_file_loads_with_its_types_and_the_dataclass_defaults(tmp_path):
    text = "name: r\nrobot: planar3\nmodel: {hidden: '32,32', members: 2}\nphases:\n  - {kind: fkloss, steps: 10, lr: 5e-4}\n  - {kind: residual, stage: [8], steps: 3}\n"
    recipe = load_recipe(_write(tmp_path, text))
    fk, res = recipe.phases
    assert recipe.model.hidden == (32, 32) and recipe.model.members == 2
    assert fk.kind == "fkloss" and fk.config.lr == 5e-4 and isinstance(fk.config.lr, float)  # YAML 1.1 reads 5e-4 as a string
    assert fk.config.lr_final == type(fk.config)().lr_final  # what the recipe leaves out is the dataclass's default
    assert res.config.stage == (8,) and res.config.train_residual
    assert Recipe.from_dict(recipe.to_dict()).to_dict() == recipe.to_dict()  # the recorded form loads back to the same recipe


@pytest.mark.parametrize(
    "change, message",
    [
        ({"phases": [{"kind": "fkloss", "stepz": 5}]}, "did you mean 'steps'"),
        ({"model": {"hiden": [8]}}, "did you mean 'hidden'"),
        ({"colour": "red"}, "unknown key(s) ['colour']"),
        ({"phases": [{"kind": "warmup", "steps": 5}]}, "known kinds"),
        ({"phases": [{"kind": "fkloss", "steps": "many"}]}, "steps must be an integer"),
        ({"phases": [{"kind": "cemssl", "keep_best": "maybe"}]}, "keep_best must be true or false"),
        ({"phases": [{"kind": "fkloss", "lr": -1}]}, "learning rates must be > 0"),
        ({"phases": [{"kind": "residual", "steps": 2}, {"kind": "fkloss", "steps": 2}]}, "a residual phase comes once and last"),
        ({"phases": []}, "has no phases"),
        ({"finetune": {"parent": "ur3_cgan"}}, "exactly one of model"),
        ({"model": {"residual_stage": [8]}}, "leave model.residual_stage empty"),
        ({"model": {"branches": "sin:1", "latent_dim": 0}}, "cannot teach branch classes"),
        ({"phases": [{"kind": "fkloss", "train_residual": True}]}, "residual phase"),
    ],
)
def test_invalid_recipes_are_refused_with_what_to_change(tmp_path, change, message):
    doc = {**BASE, **change}
    if "model" in change:
        doc["model"] = {**BASE["model"], **change["model"]}
    with pytest.raises(RecipeError) as err:
        load_recipe(_write(tmp_path, doc))
    assert message in str(err.value)


def test_missing_recipe_names_the_shipped_ones(tmp_path):
    with pytest.raises(RecipeError, match="ur3_cgan"):
        load_recipe("no_such_recipe")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(_write(tmp_path, "phases: [unclosed\n"))


def test_overrides_change_one_field_and_are_validated():
    recipe = Recipe.from_dict(BASE)
    changed = apply_overrides(recipe, ["cemssl.iterations=5", "phases.0.lr=1e-2", "model.hidden=[32, 32]", "seed=3", "robot=planar4"])
    assert changed.phases[1].config.iterations == 5 and changed.phases[0].config.lr == 1e-2
    assert changed.model.hidden == (32, 32) and changed.seed == 3 and changed.robot == "planar4"
    assert recipe.phases[1].config.iterations == 2 and recipe.model.hidden == (16, 16)  # the original is unchanged
    for bad, message in (
        ("cemssl.iterations", "expected KEY=VALUE"),
        ("residual.steps=3", "has no residual phase"),
        ("cemssl.iteratons=3", "did you mean 'iterations'"),
        ("cemssl.iterations=-1", "iterations must be >= 0"),
        ("phases.7.lr=1", "phases.N.FIELD with N < 2"),
        ("phases.0.kind=cemssl", "cannot be overridden"),
        ("finetune.parent=x", "no finetune section"),
        ("colour=red", "unknown key 'colour'"),
    ):
        with pytest.raises(RecipeError, match="--set") as err:
            apply_overrides(recipe, [bad])
        assert message in str(err.value), (bad, str(err.value))
    two = Recipe.from_dict({**BASE, "phases": [{"kind": "fkloss"}, {"kind": "fkloss"}]})
    with pytest.raises(RecipeError, match="phases.N.FIELD"):
        apply_overrides(two, ["fkloss.steps=3"])


def _tiny(recipe: Recipe) -> list[str]:
    """Overrides that make ``recipe`` run in seconds: small networks, a few steps and iterations."""
    sets = []
    if recipe.model is not None:
        sets += ["model.hidden=[16, 16]", "model.encoder_hidden=[16]", "model.discriminator_hidden=[16]", "model.coupling_blocks=2", "model.coupling_hidden=16"]
    tiny = {
        "pretrain": ["steps=3", "eval_every=3"],
        "fkloss": ["steps=3", "eval_every=3"],
        "cemssl": ["iterations=1", "samples_per_iteration=64", "inference_batch=64", "eval_targets=50"],
        "residual": ["steps=2", "stage=[8]"],
        "blackbox_cemssl": ["iterations=1", "samples_per_iteration=64", "eval_targets=50"],
    }
    return sets + [f"phases.{i}.{s}" for i, p in enumerate(recipe.phases) for s in tiny[p.kind]]


@pytest.mark.parametrize("name", recipe_names())
def test_every_shipped_recipe_runs_tiny_and_its_checkpoint_records_it(tmp_path, name):
    torch.set_num_threads(1)
    recipe = apply_overrides(load_recipe(name), _tiny(load_recipe(name)))
    chain = load_robot(recipe.robot)
    result = train_model(chain, recipe, TrainOptions(out=tmp_path / name, command=f"test {name}"))
    model, info = load_checkpoint(tmp_path / name, chain)
    record = info.training
    assert record["recipe"] == name and record["recipe_config"] == recipe.to_dict() and record["command"] == f"test {name}"
    assert [p["kind"] for p in record["phases"]] == [p.kind for p in recipe.phases]
    assert all(isinstance(p["survived"], bool) and p["stop"] for p in record["phases"])
    if recipe.finetune is not None:  # the parent by its weights' hash, not a copy of its record
        assert record["parent"]["weights_sha256"] == read_metadata(recipe.finetune.parent).metadata["weights_sha256"]
        assert record["parent"]["trained_by"] == read_metadata(recipe.finetune.parent).trained_by
    assert info.trained_by == record["trained_by"] == result.summary["trained_by"]
    assert record["final"]["eval_error_mean"] > 0
    curves = json.loads((tmp_path / f"{name}.curves.json").read_text())
    assert [p["kind"] for p in curves["phases"]] == [p.kind for p in recipe.phases] and all("history" in p for p in curves["phases"] if p)
    assert (tmp_path / f"{name}.json").stat().st_size < 20_000


def test_a_chain_in_one_recipe_trains_the_same_weights_as_its_runs_one_after_the_other(tmp_path):
    """fkloss then residual in one recipe = fkloss, then a fine-tune with the residual phase: each
    phase's randomness comes from its own seed, not from what ran before it in the process."""
    torch.set_num_threads(1)
    chain = planar_arm(3)
    model = {"members": 2, "hidden": [16, 16], "activation": "silu", "output": "biternion"}
    fkloss, residual = {"kind": "fkloss", "steps": 20, "eval_every": 0}, {"kind": "residual", "stage": [8], "steps": 10, "eval_every": 0}
    train_model(chain, Recipe.from_dict({"name": "one", "robot": "planar3", "model": model, "phases": [fkloss, residual]}), TrainOptions(out=tmp_path / "one"))
    train_model(chain, Recipe.from_dict({"name": "first", "robot": "planar3", "model": model, "phases": [fkloss]}), TrainOptions(out=tmp_path / "first"))
    torch.manual_seed(12345)  # as in another process: whatever the global generator holds does not matter
    train_model(chain, Recipe.from_dict({"name": "second", "robot": "planar3", "finetune": {"parent": str(tmp_path / "first")}, "phases": [residual]}), TrainOptions(out=tmp_path / "second"))
    one, two = read_metadata(tmp_path / "one"), read_metadata(tmp_path / "second")
    assert one.metadata["weights_sha256"] == two.metadata["weights_sha256"]
    assert one.trained_by == two.trained_by == "fkloss+residual"


@dataclasses.dataclass
class _ScaleConfig:
    """A phase kind defined outside the library: multiply the first output layer's weights."""

    factor: float = 1.0

    def __post_init__(self) -> None:
        if not self.factor > 0:
            raise ValueError(f"factor must be > 0, got {self.factor}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def test_a_phase_kind_registered_from_outside_runs_in_recipes(tmp_path):
    seen = []

    def run_scale(ctx, config):
        seen.append(ctx.evaluate is not None)
        with torch.no_grad():
            next(ctx.model.parameters()).mul_(config.factor)
        return PhaseOutcome(ctx.model, {"stop": "done", "eval_error_mean": ctx.evaluate(ctx.model)["eval_error_mean"]}, survived=config.factor != 1.0)

    register_phase_kind("scale", _ScaleConfig, run_scale, lambda config, method: "scaled")
    try:
        with pytest.raises(ValueError, match="exists already"):
            register_phase_kind("scale", _ScaleConfig, run_scale, lambda config, method: "scaled")
        recipe = load_recipe(_write(tmp_path, {**BASE, "phases": [{"kind": "fkloss", "steps": 2}, {"kind": "scale", "factor": 1.5}]}))
        with pytest.raises(RecipeError, match="factor must be > 0"):
            apply_overrides(recipe, ["scale.factor=0"])
        chain = planar_arm(3)
        evaluate = lambda model: {"eval_error_mean": 0.5}  # noqa: E731 - the caller's evaluation, passed to the runners
        train_model(chain, recipe, TrainOptions(out=tmp_path / "s", evaluate=evaluate))
        info = read_metadata(tmp_path / "s")
        assert seen == [True] and info.trained_by == "fkloss+scaled" and info.training["final"] == {"eval_error_mean": 0.5}
        same = apply_overrides(recipe, ["scale.factor=1"])
        train_model(chain, same, TrainOptions(out=tmp_path / "s1", evaluate=evaluate))
        assert read_metadata(tmp_path / "s1").trained_by == "fkloss"  # a phase that left the weights as they were is not named
    finally:
        PHASE_KINDS.pop("scale", None)
        PHASE_RUNNERS.pop("scale", None)


def test_old_format_records_load_and_name_their_surviving_phases(tmp_path):
    """Checkpoints written before recipes (a ``phase`` per record, the parent's whole record nested)
    still load, and ``trained_by`` is derived from their phases."""
    chain = planar_arm(3)
    model = new_model(chain, ModelConfig(method="cgan", members=1, hidden=(8,), output="biternion", discriminator_hidden=(8,)))
    parent = {"method": "cgan", "command": "cemssl-ik train --method cgan", "phases": [{"phase": "pretrain", "config": {"steps": 10}, "stop": "steps", "steps": 10, "history": []}]}
    cem = {"phase": "cemssl", "config": {"keep_best": True, "fk_loss_weight": 1000.0}, "stop": "iterations", "iterations": 4, "best_iteration": 3, "initial_eval_error_mean": 0.02, "history": [{"iteration": 1}]}
    save_checkpoint(tmp_path / "old", model, chain, {"method": "cgan", "command": "x", "phases": [cem], "finetuned_from": {"path": "/tmp/p", "method": "cgan", "training": parent}})
    loaded, info = load_checkpoint(tmp_path / "old", chain)
    assert info.trained_by == "cgan+cemssl_fk" and info.training["phases"][0]["history"] == [{"iteration": 1}]
    assert not (tmp_path / "old.curves.json").exists()  # nothing but the two files is needed to load
    discarded = {**cem, "best_iteration": 0}
    position = {
        "method": "cemssl",
        "phases": [{"phase": "residual", "steps": 5}],
        "finetuned_from": {"method": "cemssl", "training": {"phases": [{"phase": "warmup", "steps": 7}, discarded]}},
    }
    save_checkpoint(tmp_path / "pos", model, chain, position)
    assert read_metadata(tmp_path / "pos").trained_by == "fkloss+residual"
    save_checkpoint(tmp_path / "none", model, chain, {"strategy": "calibration_file"})
    assert read_metadata(tmp_path / "none").trained_by == "cgan"  # no phases recorded: the model's method


#: what produced each shipped model's weights (its CEMSSL iterations discarded by keep-best are not named)
SHIPPED_TRAINED_BY = {
    "ur3_fkloss_position": "fkloss+residual",
    "ur3_regression_pose": "regression",
    "ur3_cgan": "cgan",
    "ur3_cvae": "cvae",
    "ur3_cinn": "cinn",
    "ur3_cgan_cemssl_fk": "cgan+cemssl_fk",
    "ur3_cgan_fkresidual": "cgan+residual",
    "ur3_cvae_cemssl_fk": "cvae+cemssl_fk",
    "ur3_cinn_cemssl_fk": "cinn+cemssl_fk",
}


@pytest.mark.parametrize("name", sorted(SHIPPED_TRAINED_BY))
def test_shipped_checkpoints_record_their_recipe_and_what_produced_their_weights(name):
    info = read_metadata(name)
    record = info.training
    path = info.path.with_suffix(".json")
    assert path.stat().st_size < 20_000, f"{path.name}: {path.stat().st_size} bytes"
    assert name in recipe_names() and record["recipe"] == name and record["command"] == f"cemssl-ik train --recipe {name}"
    assert record["recipe_config"] == load_recipe(name).to_dict()  # the shipped recipe is the one recorded
    assert info.trained_by == SHIPPED_TRAINED_BY[name]
    # called CEMSSL only where CEMSSL iterations survived in the weights
    survived = [p["kind"] for p in record["phases"] if p["survived"]]
    assert ("cemssl" in info.trained_by) == ("cemssl" in survived)
    assert [p["kind"] for p in record["phases"]] == [p.kind for p in load_recipe(name).phases]
    if "parent" in record:
        assert record["parent"]["weights_sha256"] == read_metadata(record["parent"]["name"]).metadata["weights_sha256"]
    assert record["final"]["position_error_mm"]["mean"] > 0 and "history" not in json.dumps(record)


def test_resume_continues_the_cemssl_phase_of_the_same_recipe_only(tmp_path):
    torch.set_num_threads(1)
    chain = planar_arm(3)
    recipe = Recipe.from_dict({**BASE, "phases": [{"kind": "fkloss", "steps": 3, "eval_every": 0}, {"kind": "cemssl", "iterations": 1, "samples_per_iteration": 64, "epochs": 1, "eval_every": 0}]})
    train_model(chain, recipe, TrainOptions(out=tmp_path / "m"))
    more = apply_overrides(recipe, ["cemssl.iterations=3"])
    result = train_model(chain, more, TrainOptions(out=tmp_path / "m", resume=True))
    assert [p["kind"] for p in result.summary["phases"]] == ["fkloss", "cemssl"] and result.summary["phases"][1]["iterations"] == 3
    assert result.summary["phases"][0]["steps"] == 3  # the phase before is taken as done, its record kept
    other = Recipe.from_dict({**BASE, "name": "other", "phases": more.to_dict()["phases"]})
    with pytest.raises(ValueError, match="saved by recipe 'r', not 'other'"):
        train_model(chain, other, TrainOptions(out=tmp_path / "m", resume=True))
