"""The architecture description of an inverse model: :class:`ModelConfig`, its checks, and the
size bounds that keep a description read from an untrusted checkpoint JSON from asking for an
absurd model (:mod:`.generators` builds the model it describes)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..kinematics.branches import branch_labeler
from .encoding import OUTPUT_KINDS, TARGET_KINDS
from .networks import ACTIVATIONS

__all__ = ["METHODS", "MAX_MEMBERS", "MAX_WIDTH", "MAX_LAYERS", "MAX_CINN_BLOCKS", "ModelConfig"]

#: training methods and the generator class each produces
METHODS = ("cemssl", "emssl", "cvae", "cgan", "cinn", "unsupervised")

# Size bounds of a model description.  A checkpoint's JSON may come from anywhere; these keep a
# description from asking for an absurd model before its weights file is even looked at (the
# loader then checks the exact sizes against that file).  Far above any inverse-kinematics model.
#: most ensemble members
MAX_MEMBERS = 1024
#: widest layer: hidden widths of every network, coupling_hidden, latent_dim
MAX_WIDTH = 65536
#: most hidden layers of one network
MAX_LAYERS = 64
#: most CINN coupling blocks over all members (each block is a Python module of its own)
MAX_CINN_BLOCKS = 1024

# JSON type of each field, as :meth:`ModelConfig.from_dict` checks it (by the field's annotation)
_FIELD_TYPES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false", "tuple[int, ...]": "a list of integers"}


def _has_type(value: object, annotation: str) -> bool:
    def is_int(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if annotation == "str":
        return isinstance(value, str)
    if annotation == "int":
        return is_int(value)
    if annotation == "float":  # an int beyond 2**53 would overflow math.isfinite
        return (is_int(value) and abs(value) <= 2**53) or isinstance(value, float)
    if annotation == "bool":
        return isinstance(value, bool)
    if annotation == "tuple[int, ...]":
        return isinstance(value, (list, tuple)) and all(is_int(v) for v in value)
    raise AssertionError(f"ModelConfig field annotation {annotation!r} has no JSON type check")


@dataclass
class ModelConfig:
    """Architecture of an inverse model. Unknown keys are rejected by :meth:`from_dict`.

    Attributes:
        method: one of :data:`METHODS`.
        target: ``position`` (3 inputs) or ``pose`` (position + 6D rotation).
        latent_dim: dimension of z ~ N(0, I); 0 gives a deterministic single-solution model (EMSSL).
            CINN needs latent_dim == number of outputs (= dof with sigmoid outputs).
        members: ensemble size M.
        hidden: hidden widths of the inverse network (CEMSSL paper: 1024, 512, 256, 128).
        activation: hidden activation (of the CINN coupling subnetworks too; the CGAN discriminator
            always uses leaky_relu).
        output: ``sigmoid`` (joint-limit normalized) or ``biternion`` (cos, sin per revolute joint).
        encoder_hidden: CVAE encoder widths.
        kl_weight: CVAE weight of the KL term.
        discriminator_hidden: CGAN discriminator widths.
        coupling_blocks: CINN number of affine coupling blocks.
        coupling_hidden: CINN width of each coupling subnetwork (two hidden layers).
        branches: spec of a configuration-class labeler (:mod:`cemssl_ik.kinematics.branches`,
            e.g. ``ur3``) whose class becomes a discrete part of the latent: the model input is
            [condition, one-hot class, z].  Empty: none.  CEMSSL / EMSSL models only.
        base_symmetry: exploit the first joint's symmetry (:meth:`KinematicChain.base_symmetry_axis`):
            the network sees targets turned onto one half-plane about the first joint's axis and
            its first-joint output is relative to the target's azimuth, so it never has to learn
            the azimuth map (the network input drops to what the other joints depend on).
        residual_stage: hidden widths of a residual stage (any method; empty: none): a second
            ensemble of MLPs that sees the first network's input and output and adds
            ``residual_scale`` times its own output to that output.  Trained after the first network,
            with the first frozen (``--residual-steps``), it learns what is left of the first
            network's error at a scale where that error is of order one; it starts at zero (its
            output layer is zero-initialized), so adding one changes nothing until it is trained.
        residual_scale: output scale of the residual stage, in normalized output units (a sigmoid
            output's 1e-5 is 1e-5 of the joint's learning range: 0.13 mrad for a full 4*pi range).

    Sizes are bounded by :data:`MAX_MEMBERS`, :data:`MAX_WIDTH`, :data:`MAX_LAYERS` and
    :data:`MAX_CINN_BLOCKS`.
    """

    method: str = "cemssl"
    target: str = "position"
    latent_dim: int = 6
    members: int = 6
    hidden: tuple[int, ...] = (1024, 512, 256, 128)
    activation: str = "relu"
    output: str = "sigmoid"
    encoder_hidden: tuple[int, ...] = (512, 256, 128)
    kl_weight: float = 1e-3
    discriminator_hidden: tuple[int, ...] = (512, 256, 128)
    coupling_blocks: int = 8
    coupling_hidden: int = 256
    branches: str = ""
    base_symmetry: bool = False
    residual_stage: tuple[int, ...] = ()
    residual_scale: float = 1e-5

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        self.residual_stage = tuple(int(h) for h in self.residual_stage)
        self.encoder_hidden = tuple(int(h) for h in self.encoder_hidden)
        self.discriminator_hidden = tuple(int(h) for h in self.discriminator_hidden)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.target not in TARGET_KINDS:
            raise ValueError(f"target must be one of {TARGET_KINDS}, got {self.target!r}")
        if self.output not in OUTPUT_KINDS:
            raise ValueError(f"output must be one of {OUTPUT_KINDS}, got {self.output!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.latent_dim < 0 or self.members < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError("latent_dim must be >= 0, members >= 1, hidden non-empty positive widths")
        self._check_sizes()
        if self.method == "emssl" and self.latent_dim != 0:
            raise ValueError("emssl is the single-solution model: use latent_dim=0")
        if self.method in ("cvae", "cgan", "cinn") and self.latent_dim < 1:
            raise ValueError(f"{self.method} needs latent_dim >= 1")
        if self.method == "cinn" and self.output != "sigmoid":
            raise ValueError("cinn models joint values directly: use output='sigmoid'")
        if self.branches:
            if self.method not in ("cemssl", "emssl"):
                raise ValueError(f"branch classes are for cemssl / emssl models, not {self.method!r}")
            branch_labeler(self.branches)  # validates the spec
        if self.residual_stage:
            if min(self.residual_stage) < 1:
                raise ValueError(f"residual_stage widths must be positive, got {list(self.residual_stage)}")
        if not (math.isfinite(self.residual_scale) and self.residual_scale > 0):
            raise ValueError(f"residual_scale must be > 0, got {self.residual_scale}")
        if not (math.isfinite(self.kl_weight) and self.kl_weight >= 0):
            raise ValueError(f"kl_weight must be >= 0, got {self.kl_weight}")

    def _check_sizes(self) -> None:
        if self.members > MAX_MEMBERS:
            raise ValueError(f"members must be <= {MAX_MEMBERS}, got {self.members}")
        if self.latent_dim > MAX_WIDTH or not 1 <= self.coupling_hidden <= MAX_WIDTH:
            raise ValueError(f"latent_dim must be <= {MAX_WIDTH} and coupling_hidden in [1, {MAX_WIDTH}], got {self.latent_dim}, {self.coupling_hidden}")
        for name in ("hidden", "encoder_hidden", "discriminator_hidden", "residual_stage"):
            widths = getattr(self, name)
            if len(widths) > MAX_LAYERS or (widths and not 1 <= min(widths) <= max(widths) <= MAX_WIDTH):
                raise ValueError(f"{name} must be at most {MAX_LAYERS} widths in [1, {MAX_WIDTH}], got {len(widths)} widths in [{min(widths)}, {max(widths)}]")
        if self.coupling_blocks < 1 or (self.method == "cinn" and self.members * self.coupling_blocks > MAX_CINN_BLOCKS):
            raise ValueError(f"coupling_blocks must be >= 1, and a cinn's members * coupling_blocks <= {MAX_CINN_BLOCKS}, got {self.members} * {self.coupling_blocks}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("hidden", "encoder_hidden", "discriminator_hidden", "residual_stage"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """The config of a JSON object (as :meth:`to_dict` writes it); missing keys take their defaults.

        Raises:
            TypeError: ``d`` is not a dict, or a value is not of its field's JSON type (a string
                where an integer belongs, ``true`` for a width, ...).
            ValueError: unknown keys, or values out of range.
        """
        if not isinstance(d, dict):
            raise TypeError(f"a model config is a JSON object, got {type(d).__name__}")
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"unknown model config key(s) {unknown[:10]}; known: {sorted(fields)}")
        for name, value in d.items():
            if not _has_type(value, fields[name]):
                raise TypeError(f"model config {name!r} must be {_FIELD_TYPES[fields[name]]}, got {type(value).__name__} {_short(value)}")
        return cls(**d)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
