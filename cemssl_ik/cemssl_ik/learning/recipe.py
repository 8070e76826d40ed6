"""Training recipes as data: the robot, the model to start from, and an ordered list of phases.

A recipe is a YAML file (``cemssl_ik/recipes/NAME.yaml`` for the shipped models, or any path)::

    name: ur3_example
    robot: ur3                  # a built-in robot (ur3, planarN, artificialN) or a URDF path
    model: {method: cemssl, members: 2, activation: silu, output: biternion}
    # or, instead of model, a checkpoint to fine-tune:
    # finetune: {parent: ur3_cgan, base_symmetry: true}
    phases:
      - {kind: fkloss, steps: 20000, lr: 5.0e-4}
      - {kind: cemssl, iterations: 2, epochs: 1}

Each phase has a ``kind`` and the fields of that kind's config dataclass (:data:`PHASE_KINDS`);
a field left out takes the dataclass's default, the one place defaults live.  Unknown keys and
values of the wrong type are refused with the known keys named.  Built-in kinds:

========== ======================= ==========================================================
kind       config                  what it trains
========== ======================= ==========================================================
pretrain   SupervisedConfig        supervised training on FK samples (the CVAE / CGAN / CINN
                                   objective; plain regression for MLP models)
fkloss     UnsupervisedConfig      FK loss through the differentiable chain (Stephan et al.)
cemssl     CEMSSLConfig            CEMSSL iterations (the CEMSSL paper, Algorithm 1)
residual   ResidualConfig          adds a residual stage, trains it alone by FK loss (last)
========== ======================= ==========================================================

Another kind is added with :func:`cemssl_ik.learning.pipeline.register_phase_kind`.
:func:`apply_overrides` changes single fields (``cemssl.iterations=5``) and validates again.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..models.generators import ModelConfig
from .blackbox import BlackBoxConfig
from .cemssl import CEMSSLConfig
from .supervised import SupervisedConfig
from .unsupervised import UnsupervisedConfig

__all__ = [
    "RecipeError",
    "ResidualConfig",
    "FinetuneConfig",
    "Phase",
    "PhaseKind",
    "PHASE_KINDS",
    "Recipe",
    "recipe_names",
    "recipe_path",
    "load_recipe",
    "apply_overrides",
    "config_from_dict",
]

#: largest recipe file read (bytes)
MAX_RECIPE_BYTES = 1 << 20
#: folder of the shipped recipes (package data)
RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"


class RecipeError(ValueError):
    """A recipe that cannot be used: unknown keys, values of the wrong type or out of range."""


@dataclass
class ResidualConfig(UnsupervisedConfig):
    """FK-loss training of a residual stage added to the model, the rest frozen.

    Every :class:`UnsupervisedConfig` field applies (``train_residual`` is always on), plus:

    Attributes:
        stage: hidden widths of the residual stage (``ModelConfig.residual_stage``).
        scale: its output scale in normalized output units (``ModelConfig.residual_scale``).
    """

    stage: tuple[int, ...] = (256, 256, 256)
    scale: float = 1e-5

    def __post_init__(self) -> None:
        self.train_residual = True
        self.stage = tuple(self.stage)
        super().__post_init__()
        if not self.stage or min(self.stage) < 1:
            raise ValueError(f"stage must be non-empty positive widths, got {list(self.stage)}")
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")

    def to_dict(self) -> dict:
        return {**super().to_dict(), "stage": list(self.stage)}


@dataclass
class BlackBoxPhaseConfig(BlackBoxConfig):
    """Black-box CEMSSL (:class:`~.blackbox.BlackBoxCEMSSL`) against a simulated arm: the FK of a
    chain the trainer only calls, never differentiates.  Every :class:`BlackBoxConfig` field
    applies, plus:

    Attributes:
        arm_urdf: URDF of the simulated arm, with the recipe's base and tip links ("" = the recipe's robot).
        arm_link_change: metres added to every link of that arm (a changed arm the model adapts to).
    """

    arm_urdf: str = ""
    arm_link_change: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.arm_link_change) and abs(self.arm_link_change) <= 0.5):
            raise ValueError(f"arm_link_change must be within +-0.5 m, got {self.arm_link_change!r}")

    def trainer_config(self) -> BlackBoxConfig:
        known = {f.name for f in dataclasses.fields(BlackBoxConfig)}
        return BlackBoxConfig(**{k: v for k, v in dataclasses.asdict(self).items() if k in known})


def _fkloss_config(**kw: Any) -> UnsupervisedConfig:
    if kw.get("train_residual"):
        raise ValueError("train_residual belongs to a residual phase (kind: residual), not to fkloss")
    return UnsupervisedConfig(**kw)


def _pretrain_label(config: Any, model_method: str) -> str:
    return model_method if model_method in ("cvae", "cgan", "cinn") else "regression"


@dataclass(frozen=True)
class PhaseKind:
    """What a phase kind is made of.

    Attributes:
        config: its config dataclass (fields with defaults, validation in ``__post_init__``,
            ``to_dict()``).
        label: ``label(config, model_method)``: the name of the method its surviving weights
            count as (``"fkloss"``, ``"cemssl_fk"``, ...), joined with ``+`` into a checkpoint's
            ``trained_by``.
        build: how to construct the config from its keyword arguments (default: ``config``).
    """

    config: type
    label: Callable[[Any, str], str]
    build: Callable[..., Any] | None = None


#: phase kind -> its config and label (the runners live in :mod:`.pipeline`)
PHASE_KINDS: dict[str, PhaseKind] = {
    "pretrain": PhaseKind(SupervisedConfig, _pretrain_label),
    "fkloss": PhaseKind(UnsupervisedConfig, lambda c, m: "fkloss", _fkloss_config),
    "cemssl": PhaseKind(CEMSSLConfig, lambda c, m: "cemssl_fk" if c.fk_loss_weight > 0 else "cemssl"),
    "residual": PhaseKind(ResidualConfig, lambda c, m: "residual"),
    "blackbox_cemssl": PhaseKind(BlackBoxPhaseConfig, lambda c, m: "cemssl"),
}


@dataclass(frozen=True)
class Phase:
    """One phase of a recipe: its kind and that kind's config."""

    kind: str
    config: Any

    def to_dict(self) -> dict:
        return {"kind": self.kind, **_plain(self.config.to_dict())}


@dataclass
class FinetuneConfig:
    """The checkpoint a fine-tuning recipe starts from.

    Attributes:
        parent: a shipped model name or a checkpoint path; its architecture is the model's.
        base_symmetry: give a parent without the base symmetry the symmetry, its weights kept
            (:func:`cemssl_ik.models.with_base_symmetry`).
    """

    parent: str = ""
    base_symmetry: bool = False

    def __post_init__(self) -> None:
        if not self.parent:
            raise ValueError("finetune needs a parent: a shipped model name or a checkpoint path")


@dataclass
class Recipe:
    """How to train one model, from a fresh architecture or a parent checkpoint.

    Attributes:
        name: the recipe's name (its file's stem for the shipped ones).
        phases: what trains the model, in order.
        description: what the recipe produces, in a sentence or two.
        robot: a built-in robot name (ur3, planarN, artificialN) or a URDF path.
        base_link, tip_link: the chain's ends (default: the robot's).
        model: the architecture of a model trained from scratch (``residual_stage`` stays empty:
            a residual phase adds the stage).
        finetune: the checkpoint to start from instead of ``model``.
        seed: seed of the model's initialization (each phase has its own ``seed`` field).
    """

    name: str
    phases: list[Phase]
    description: str = ""
    robot: str = "ur3"
    base_link: str | None = None
    tip_link: str | None = None
    model: ModelConfig | None = None
    finetune: FinetuneConfig | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.model is None) == (self.finetune is None):
            raise RecipeError(f"recipe {self.name!r}: give exactly one of model (train from scratch) or finetune (start from a checkpoint)")
        if not self.phases:
            raise RecipeError(f"recipe {self.name!r} has no phases")
        unknown = [p.kind for p in self.phases if p.kind not in PHASE_KINDS]
        if unknown:
            raise RecipeError(f"recipe {self.name!r}: unknown phase kind(s) {unknown}; known: {sorted(PHASE_KINDS)}")
        kinds = [p.kind for p in self.phases]
        if "residual" in kinds and (kinds.count("residual") > 1 or kinds[-1] != "residual"):
            raise RecipeError(f"recipe {self.name!r}: a residual phase comes once and last (it freezes everything before it), got {kinds}")
        if self.model is not None:
            if self.model.residual_stage:
                raise RecipeError(f"recipe {self.name!r}: leave model.residual_stage empty; a residual phase adds the stage (its stage and scale)")
            if self.model.branches and "fkloss" in kinds:
                raise RecipeError(f"recipe {self.name!r}: the FK loss cannot teach branch classes (any branch reaching the target scores the same); train a branch model with a pretrain phase")

    def phase_index(self, kind: str) -> int:
        """Index of the only phase of ``kind``."""
        found = [i for i, p in enumerate(self.phases) if p.kind == kind]
        if not found:
            raise RecipeError(f"recipe {self.name!r} has no {kind} phase (phases: {[p.kind for p in self.phases]})")
        if len(found) > 1:
            raise RecipeError(f"recipe {self.name!r} has {len(found)} {kind} phases: address one as phases.N.FIELD (N in {found})")
        return found[0]

    def to_dict(self) -> dict:
        """The resolved recipe, every field present (what a checkpoint records)."""
        return {
            "name": self.name,
            "description": self.description,
            "robot": self.robot,
            "base_link": self.base_link,
            "tip_link": self.tip_link,
            "seed": self.seed,
            "model": None if self.model is None else self.model.to_dict(),
            "finetune": None if self.finetune is None else dataclasses.asdict(self.finetune),
            "phases": [p.to_dict() for p in self.phases],
        }

    @classmethod
    def from_dict(cls, d: Any, name: str = "") -> "Recipe":
        """A recipe from its dict form (YAML), every key and value checked.

        Raises:
            RecipeError: not a mapping, unknown or missing keys, values of the wrong type or out of range.
        """
        if not isinstance(d, dict):
            raise RecipeError(f"recipe {name!r} must be a mapping of keys to values, got {type(d).__name__}")
        d = dict(d)
        name = d.pop("name", None) or name
        where = f"recipe {name!r}"
        phases_raw = d.pop("phases", None)
        model_raw, finetune_raw = d.pop("model", None), d.pop("finetune", None)
        top = config_from_dict(_RecipeTop, d, where)
        if not isinstance(phases_raw, list) or not all(isinstance(p, dict) for p in phases_raw):
            raise RecipeError(f"{where}: phases must be a list of mappings, each with a kind, got {phases_raw!r}")
        phases = []
        for i, raw in enumerate(phases_raw):
            raw = dict(raw)
            kind = raw.pop("kind", None)
            if kind not in PHASE_KINDS:
                raise RecipeError(f"{where}: phase {i} has kind {kind!r}; known kinds: {sorted(PHASE_KINDS)}")
            spec = PHASE_KINDS[kind]
            phases.append(Phase(kind, config_from_dict(spec.config, raw, f"{where}, phase {i} ({kind})", spec.build)))
        model = None if model_raw is None else config_from_dict(ModelConfig, model_raw, f"{where}, model")
        finetune = None if finetune_raw is None else config_from_dict(FinetuneConfig, finetune_raw, f"{where}, finetune")
        return cls(name=name, phases=phases, model=model, finetune=finetune, **dataclasses.asdict(top))


@dataclass
class _RecipeTop:
    """The scalar top-level keys of a recipe (see :class:`Recipe`)."""

    description: str = ""
    robot: str = "ur3"
    base_link: str | None = None
    tip_link: str | None = None
    seed: int = 0


# -- typed construction from YAML values ----------------------------------------------------------


def _plain(d: dict) -> dict:
    """Tuples as lists (YAML's safe dumper and JSON agree on lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _describe(tp: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(tp, "a list of integers")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` (from YAML or a --set) as type ``tp``; YAML 1.1 reads ``5e-4`` as a string, so
    numbers in strings are parsed."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        tp = args[0]
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif tp is int:
        if is_int:
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif tp is float:
        if is_int or isinstance(value, float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is list or typing.get_origin(tp) is list:
        if isinstance(value, list):
            return list(value)
    elif typing.get_origin(tp) is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(v, int, where) for v in value)
    raise RecipeError(f"{where} must be {_describe(tp)}, got {value!r}")


def config_from_dict(cls: type, d: Any, where: str, build: Callable[..., Any] | None = None) -> Any:
    """An instance of dataclass ``cls`` from a mapping: unknown keys refused (closest known key
    suggested), values coerced to the fields' types, then the dataclass's own validation.

    Raises:
        RecipeError: with ``where`` and what to change.
    """
    if not isinstance(d, dict):
        raise RecipeError(f"{where} must be a mapping of keys to values, got {d!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in d if k not in known]
    if unknown:
        close = {k: difflib.get_close_matches(str(k), known, n=1) for k in unknown}
        hint = "; ".join(f"{k!r}: did you mean {c[0]!r}?" for k, c in close.items() if c)
        raise RecipeError(f"{where}: unknown key(s) {unknown}{' (' + hint + ')' if hint else ''}; known: {known}")
    kwargs = {k: _coerce(v, hints[k], f"{where}: {k}") for k, v in d.items()}
    try:
        return (build or cls)(**kwargs)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{where}: {exc}") from exc


# -- files and overrides ------------------------------------------------------------------------


def recipe_names() -> list[str]:
    """Names of the shipped recipes."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    """The file of a shipped recipe name, or ``name_or_path`` itself when it is a file.

    Raises:
        RecipeError: neither a file nor a shipped recipe name.
    """
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise RecipeError(f"no recipe file {str(p)!r}")
        return p
    shipped = RECIPES_DIR / f"{name_or_path}.yaml"
    if "/" in str(name_or_path) or not shipped.is_file():
        raise RecipeError(f"no recipe {str(name_or_path)!r}: not a file, and not a shipped recipe ({', '.join(recipe_names())})")
    return shipped


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Read and validate a recipe: a shipped name (``ur3_cgan``) or a YAML file path.

    Raises:
        RecipeError: missing file, not YAML, or an invalid recipe.
    """
    import yaml

    path = recipe_path(name_or_path)
    data = path.read_bytes()
    if len(data) > MAX_RECIPE_BYTES:
        raise RecipeError(f"recipe {path} is {len(data)} bytes, more than the {MAX_RECIPE_BYTES} accepted")
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {path} is not valid YAML: {exc}") from exc
    return Recipe.from_dict(raw, name=path.stem)


def _set(d: dict, recipe: Recipe, key: str, value: Any) -> None:
    parts = key.split(".")
    head = parts[0]
    if head in ("model", "finetune"):
        if len(parts) != 2 or d[head] is None:
            raise RecipeError(f"this recipe has no {head} section to change (it {'fine-tunes a checkpoint' if head == 'model' else 'trains from scratch'})" if len(parts) == 2 else f"expected {head}.FIELD, got {key!r}")
        d[head][parts[1]] = value
    elif head == "phases":
        if len(parts) != 3 or not parts[1].isdigit() or not int(parts[1]) < len(d["phases"]):
            raise RecipeError(f"expected phases.N.FIELD with N < {len(d['phases'])}, got {key!r}")
        index, name = int(parts[1]), parts[2]
        _set_phase_field(d["phases"][index], name, value)
    elif head in PHASE_KINDS:
        if len(parts) != 2:
            raise RecipeError(f"expected {head}.FIELD, got {key!r}")
        _set_phase_field(d["phases"][recipe.phase_index(head)], parts[1], value)
    elif len(parts) == 1 and head in ("robot", "base_link", "tip_link", "seed", "description"):
        d[head] = value
    else:
        raise RecipeError(f"unknown key {key!r}: expected robot, base_link, tip_link, seed, model.FIELD, finetune.FIELD, KIND.FIELD (KIND in {sorted(PHASE_KINDS)}) or phases.N.FIELD")


def _set_phase_field(phase: dict, name: str, value: Any) -> None:
    if name == "kind":
        raise RecipeError("a phase's kind cannot be overridden: write a recipe file with the phases you want")
    phase[name] = value


def apply_overrides(recipe: Recipe, overrides: Sequence[str]) -> Recipe:
    """A copy of ``recipe`` with ``KEY=VALUE`` overrides applied, validated as a whole.

    KEY is ``robot``, ``seed``, ``base_link``, ``tip_link``, ``model.FIELD``, ``finetune.FIELD``,
    ``KIND.FIELD`` (the recipe's only phase of that kind, e.g. ``cemssl.iterations``) or
    ``phases.N.FIELD``.  VALUE is read as YAML (``5``, ``1e-3``, ``[32, 32]``, ``true``, ``null``).

    Raises:
        RecipeError: a malformed override, an unknown key, or a value the recipe refuses.
    """
    import yaml

    d = recipe.to_dict()
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set {item!r}: expected KEY=VALUE, e.g. cemssl.iterations=5")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        try:
            _set(d, recipe, key.strip(), value)
        except RecipeError as exc:
            raise RecipeError(f"--set {item!r}: {exc}") from None
    try:
        return Recipe.from_dict(d, name=recipe.name)
    except RecipeError as exc:
        raise RecipeError(f"after --set {' '.join(overrides)}: {exc}") from None
