"""Checkpoints as data: safetensors weights + JSON metadata, written atomically, verified on load.

A checkpoint ``NAME`` is the pair ``NAME.safetensors`` / ``NAME.json``.  Nothing is ever unpickled:
weights load with ``safetensors`` and the model is rebuilt from the JSON's configuration.  Loading
checks the format version, the weights' SHA-256 recorded in the JSON, and (when a chain is given)
that the checkpoint was trained for that robot: URDF hash, base / tip links and joint names.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..kinematics.chain import KinematicChain
from .encoding import JointCodec, TargetEncoder
from .generators import IKGenerator, ModelConfig, build_generator

__all__ = ["FORMAT_VERSION", "CheckpointError", "CheckpointInfo", "save_checkpoint", "load_checkpoint", "read_metadata", "resolve_model_path", "atomic_write_bytes"]

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, of an unknown format, or for another robot."""


@dataclass(frozen=True)
class CheckpointInfo:
    """Metadata of a loaded checkpoint (the parsed JSON) and where it came from."""

    path: Path
    metadata: dict[str, Any]

    @property
    def training(self) -> dict[str, Any]:
        return self.metadata.get("training", {})


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see either the old or the new content, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; checkpoints are ordinary shared files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | Path, model: IKGenerator, chain: KinematicChain, training: dict[str, Any] | None = None) -> Path:
    """Save ``model`` trained for ``chain``; returns the weights path. Weights first, then the JSON
    that references their hash, each atomically, so a crash never leaves a mismatched pair loadable."""
    from safetensors.torch import save

    weights_path, meta_path = _paths(path)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    blob = save(tensors)
    lo, hi = chain.learning_limits()
    metadata = {
        "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "robot": {
            "name": chain.name,
            "urdf_hash": chain.source_hash,
            "kinematics_hash": chain.kinematics_hash,
            "base_link": chain.base_link,
            "tip_link": chain.tip_link,
            "joint_names": list(chain.joint_names),
            "lower": chain.lower.tolist(),
            "upper": chain.upper.tolist(),
            "learning_lower": lo.tolist(),
            "learning_upper": hi.tolist(),
            "periodic": chain.periodic.tolist(),
        },
        "method": model.config.method,
        "model_config": model.config.to_dict(),
        "target_encoder": model.target_encoder.to_dict(),
        "output": model.codec.kind,
        "dtype": str(model.dtype).replace("torch.", ""),
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "versions": {"torch": torch.__version__, "cemssl_ik": _package_version()},
        "training": training or {},
    }
    atomic_write_bytes(weights_path, blob)
    atomic_write_bytes(meta_path, (json.dumps(metadata, indent=2, default=_json_default) + "\n").encode())
    return weights_path


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _package_version() -> str:
    from .. import __version__

    return __version__


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A shipped model name (``ur3_cemssl_position``) or a checkpoint path -> the weights path."""
    weights, meta = _paths(name_or_path)
    if weights.exists() or meta.exists() or os.sep in str(name_or_path) or str(name_or_path).endswith((".safetensors", ".json")):
        return weights
    from ..kinematics.robots import find_package_file

    try:
        return _paths(find_package_file(f"models/{name_or_path}.json"))[0]
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint {str(name_or_path)!r}: not a file, and not a shipped model name (see cemssl_ik/models/README.md)") from None


def read_metadata(path: str | Path) -> CheckpointInfo:
    """The JSON metadata of a checkpoint (path or shipped name), without loading the weights."""
    weights_path, meta_path = _paths(resolve_model_path(path))
    if not meta_path.is_file():
        raise CheckpointError(f"checkpoint metadata {meta_path} not found")
    try:
        metadata = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint metadata {meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict) or "robot" not in metadata:
        raise CheckpointError(f"{meta_path}: not a cemssl_ik checkpoint description")
    return CheckpointInfo(weights_path, metadata)


def load_checkpoint(
    path: str | Path,
    chain: KinematicChain | None = None,
    device: torch.device | str = "cpu",
) -> tuple[IKGenerator, CheckpointInfo]:
    """Rebuild the model of a checkpoint and load its weights (never unpickles).

    Args:
        path: checkpoint path (with or without extension) or shipped model name.
        chain: if given, the robot the caller will use; a checkpoint for another robot is refused.
        device: where to put the model.

    Raises:
        CheckpointError: missing / corrupt files, unknown format, weights that do not match the
            recorded hash or the architecture, or a robot mismatch.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    weights_path, meta_path = _paths(resolve_model_path(path))
    if not meta_path.is_file() or not weights_path.is_file():
        raise CheckpointError(f"checkpoint {str(weights_path.with_suffix(''))!r} needs both {weights_path.name} and {meta_path.name}")
    try:
        metadata = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint metadata {meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict) or metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{meta_path}: unsupported checkpoint format version {metadata.get('format_version') if isinstance(metadata, dict) else None!r} (this cemssl_ik reads {FORMAT_VERSION})")
    blob = weights_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != metadata.get("weights_sha256"):
        raise CheckpointError(f"{weights_path}: weights do not match the SHA-256 recorded in {meta_path.name} (corrupt or from another checkpoint)")
    robot = metadata["robot"]
    if chain is not None:
        problems = []
        same_kinematics = robot.get("kinematics_hash") is not None and robot["kinematics_hash"] == chain.kinematics_hash
        if same_kinematics:
            pass  # same joint origins, axes, types and limits: names and URDF text may differ (prefixes, xacro output)
        else:
            if robot["urdf_hash"] != chain.source_hash:
                problems.append("robot description differs (URDF hash, and kinematics: joint origins, axes or limits)")
            if (robot["base_link"], robot["tip_link"]) != (chain.base_link, chain.tip_link):
                problems.append(f"chain {robot['base_link']}->{robot['tip_link']} vs {chain.base_link}->{chain.tip_link}")
            if list(robot["joint_names"]) != list(chain.joint_names):
                problems.append(f"joints {robot['joint_names']} vs {list(chain.joint_names)}")
        if problems:
            raise CheckpointError(f"checkpoint {weights_path.name} was trained for robot {robot['name']!r}, not this {chain.name!r} chain: " + "; ".join(problems))
    try:
        config = ModelConfig.from_dict(metadata["model_config"])
        encoder = TargetEncoder.from_dict(metadata["target_encoder"])
        codec = JointCodec(robot["learning_lower"], robot["learning_upper"], robot["periodic"], metadata["output"])
        model = build_generator(config, encoder, codec)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{meta_path}: invalid model description: {exc}") from exc
    try:
        tensors = load(blob)
    except SafetensorError as exc:
        raise CheckpointError(f"{weights_path}: not a valid safetensors file: {exc}") from exc
    dtype = getattr(torch, metadata.get("dtype", "float32"))
    model.to(dtype)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights_path}: weights do not fit the recorded architecture: {exc}") from exc
    model.to(device)
    model.eval()
    return model, CheckpointInfo(weights_path, metadata)
