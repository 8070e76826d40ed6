"""Conditional inverse models (IM(target, z) -> q), their encodings and checkpoints."""

from .checkpoint import FORMAT_VERSION, CheckpointError, CheckpointInfo, load_checkpoint, read_metadata, resolve_model_path, save_checkpoint
from .config import METHODS, ModelConfig
from .encoding import JointCodec, TargetEncoder
from .generators import CGAN, CINN, CVAE, IKGenerator, MLPGenerator, SampleResult, build_generator, select_members
from .loading import CheckpointRobot, LoadedModel, load_model
from .networks import BatchedLinear, BatchedMLP

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "CheckpointInfo",
    "load_checkpoint",
    "read_metadata",
    "resolve_model_path",
    "save_checkpoint",
    "CheckpointRobot",
    "LoadedModel",
    "load_model",
    "JointCodec",
    "TargetEncoder",
    "CGAN",
    "CINN",
    "CVAE",
    "METHODS",
    "IKGenerator",
    "MLPGenerator",
    "ModelConfig",
    "SampleResult",
    "build_generator",
    "select_members",
    "BatchedLinear",
    "BatchedMLP",
    "new_model",
    "with_base_symmetry",
    "with_residual_stage",
    "check_residual_stage",
]


def new_model(chain, config: ModelConfig, positions=None) -> IKGenerator:
    """A freshly initialized model of ``config`` for ``chain`` (float32).

    Workspace statistics for input normalization come from ``positions`` (N, 3), or from FK of
    20,000 random configurations (seeded, deterministic).
    """
    import torch

    if positions is None:
        q = chain.sample_configurations(20_000, torch.Generator().manual_seed(12345))
        positions = chain.forward(q).position
    axis_point = axis = None
    if config.base_symmetry:
        axis_point, axis = _symmetry_axis(chain)
    encoder = TargetEncoder.fit(config.target, positions, axis_point, axis)
    lo, hi = chain.learning_limits()
    codec = JointCodec(lo, hi, chain.periodic, config.output)
    model = build_generator(config, encoder, codec)
    if model.branch_labeler is not None:
        from ..kinematics.branches import check_chain

        check_chain(model.branch_labeler, chain)
    return model


def _symmetry_axis(chain):
    sym = chain.base_symmetry_axis()
    if sym is None:
        raise ValueError(
            f"chain {chain.name!r}: base_symmetry needs a revolute first joint whose learning range is a full turn "
            f"(here {chain.joint_types[0]} with limits [{chain.learning_limits()[0][0]:.3g}, {chain.learning_limits()[1][0]:.3g}])"
        )
    return sym


def with_base_symmetry(model: IKGenerator, chain) -> IKGenerator:
    """The same network (weights copied) behind the base-symmetric target encoding.

    The encoder keeps the model's workspace statistics, so on the reference half-plane (azimuth 0)
    the result computes exactly what ``model`` computes; any other target is turned onto that
    half-plane and the first joint turned back by its azimuth.  A model trained without the
    symmetry, e.g. a pretrained baseline, thus becomes a base-symmetric one to fine-tune, starting
    from its own solutions for the targets of one half-plane.  A model that has it is returned as is.
    """
    if model.config.base_symmetry:
        return model
    axis_point, axis = _symmetry_axis(chain)
    old = model.target_encoder
    encoder = TargetEncoder(old.kind, old.mean, old.scale, tuple(float(v) for v in axis_point), tuple(float(v) for v in axis))
    config = ModelConfig.from_dict({**model.config.to_dict(), "base_symmetry": True})
    out = build_generator(config, encoder, model.codec).to(model.device, model.dtype)
    out.load_state_dict(model.state_dict())
    return out


def check_residual_stage(model: IKGenerator, hidden, scale: float) -> None:
    """Raise ValueError if ``model`` already has a residual stage other than ``hidden`` at ``scale``."""
    have = (model.config.residual_stage, model.config.residual_scale)
    if have[0] and have != (tuple(int(h) for h in hidden), scale):
        raise ValueError(f"the model already has a residual stage {list(have[0])} (scale {have[1]:g}), not {list(hidden)} (scale {scale:g})")


def with_residual_stage(model: IKGenerator, hidden, scale: float = 1e-5) -> IKGenerator:
    """The same model with a fresh residual stage (``ModelConfig.residual_stage``) of widths ``hidden``.

    The stage starts at zero, so the result computes exactly what ``model`` computes until the
    stage is trained.  A model that already has a stage of these widths and scale is returned as is;
    one with another stage is refused (training would have to start it over).
    """
    hidden = tuple(int(h) for h in hidden)
    check_residual_stage(model, hidden, scale)
    if model.config.residual_stage:
        return model
    config = ModelConfig.from_dict({**model.config.to_dict(), "residual_stage": list(hidden), "residual_scale": scale})
    out = build_generator(config, model.target_encoder, model.codec).to(model.device, model.dtype)
    missing, unexpected = out.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("residual_net.") for k in missing):
        raise ValueError(f"cannot add a residual stage to this {model.config.method} model (missing {missing}, unexpected {unexpected})")
    return out
