"""Checkpoints as data: safetensors weights + JSON metadata, written atomically, verified on load.

A checkpoint ``NAME`` is the pair ``NAME.safetensors`` / ``NAME.json``.  Nothing is ever unpickled:
weights load with ``safetensors`` and the model is rebuilt from the JSON's configuration.  Loading
treats both files as untrusted (:mod:`.checkpoint_format`): it checks the JSON's size and depth
before parsing it and every field after; when a chain is given, that the checkpoint was trained for
that robot (kinematics hash, or URDF hash, base / tip links and joint names); then the weights
file's header against the parameter shapes the configuration implies (computed on the ``meta``
device, which allocates nothing), and only then reads the weights, checks their SHA-256 recorded in
the JSON and that they are finite.  So nothing is allocated for a model whose files disagree, and
loading holds at most twice the weights file's size (the file's bytes, then the parameters).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..kinematics.chain import KinematicChain
from ..resources import find_package_file
from .checkpoint_format import (
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    MAX_METADATA_BYTES,
    MAX_WEIGHTS_BYTES,
    CheckpointError,
    ModelDescription,
    check_metadata,
    check_weights_header,
    parse_json,
    read_bounded,
    read_weights_header,
)
from .generators import IKGenerator, build_generator
from .provenance import curves_path, legacy_trained_by

__all__ = ["FORMAT_VERSION", "CheckpointError", "CheckpointInfo", "save_checkpoint", "load_checkpoint", "read_metadata", "resolve_model_path", "checkpoint_files", "atomic_write_bytes", "DEPRECATED_MODEL_NAMES"]

# Shipped models renamed to say which method produced their weights (the files are the same bytes):
# old name -> current name.  The old names still load, with a one-line warning.
DEPRECATED_MODEL_NAMES = {
    "ur3_cemssl_position": "ur3_fkloss_position",
    "ur3_cemssl_pose": "ur3_regression_pose",
    "ur3_cgan_cemssl": "ur3_cgan_cemssl_fk",
    "ur3_cvae_cemssl": "ur3_cvae_cemssl_fk",
    "ur3_cinn_cemssl": "ur3_cinn_cemssl_fk",
}


@dataclass(frozen=True)
class CheckpointInfo:
    """Metadata of a loaded checkpoint (the parsed JSON) and where it came from."""

    path: Path
    metadata: dict[str, Any]

    @property
    def training(self) -> dict[str, Any]:
        """The training record: recipe, command, commit, parent, phases (see :mod:`.provenance`)."""
        return self.metadata.get("training", {})

    @property
    def trained_by(self) -> str:
        """The methods whose phases produced the weights, e.g. ``"fkloss+residual"`` (:mod:`.provenance`);
        derived from the phases for records written before recipes, the model's method if it has none."""
        label = self.training.get("trained_by")
        if isinstance(label, str) and label:
            return label
        derived = legacy_trained_by(self.training, str(self.metadata.get("method", "")))
        return str(self.metadata.get("method", "untrained")) if derived == "untrained" and not self.training.get("phases") else derived


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


def save_checkpoint(path: str | Path, model: IKGenerator, chain: KinematicChain, training: dict[str, Any] | None = None, curves: dict[str, Any] | None = None) -> Path:
    """Save ``model`` trained for ``chain``; returns the weights path. Weights first, then the JSON
    that references their hash, each atomically, so a crash never leaves a mismatched pair loadable.

    ``training`` is the training record kept in the JSON (small: what produced the weights);
    ``curves``, if given, is written to the ``NAME.curves.json`` sidecar (learning curves of any
    size, not needed for loading and not installed with the shipped models)."""
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
    text = (json.dumps(metadata, indent=2, default=_json_default) + "\n").encode()
    if len(text) > MAX_METADATA_BYTES:  # refused before anything is written: the loader would refuse it
        raise CheckpointError(f"checkpoint metadata of {len(text)} bytes exceeds the {MAX_METADATA_BYTES} the loader reads; shorten the training record")
    atomic_write_bytes(weights_path, blob)
    if curves is not None:
        atomic_write_bytes(curves_path(meta_path), (json.dumps(curves, default=_json_default) + "\n").encode())
    atomic_write_bytes(meta_path, text)
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
    """A shipped model name (``ur3_fkloss_position``) or a checkpoint path -> the weights path."""
    try:
        weights, meta = _paths(name_or_path)
        if weights.exists() or meta.exists() or os.sep in str(name_or_path) or str(name_or_path).endswith((".safetensors", ".json")):
            return weights
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        raise CheckpointError(f"no checkpoint {str(name_or_path)[:200]!r}: {exc}") from exc
    name = str(name_or_path)
    if name in DEPRECATED_MODEL_NAMES:
        name = DEPRECATED_MODEL_NAMES[name]
        logging.getLogger(__name__).warning("model name %r is deprecated: it is now %r (same weights)", str(name_or_path), name)
    try:
        return _paths(find_package_file(f"models/{name}.json"))[0]
    except (FileNotFoundError, OSError, ValueError):
        raise CheckpointError(f"no checkpoint {str(name_or_path)[:200]!r}: not a file, and not a shipped model name (see cemssl_ik/models/README.md)") from None


def _read_checked_metadata(meta_path: Path) -> tuple[dict[str, Any], ModelDescription]:
    metadata = parse_json(read_bounded(meta_path, MAX_METADATA_BYTES, "checkpoint metadata"), f"checkpoint metadata {meta_path}")
    return metadata, check_metadata(metadata, str(meta_path))


def read_metadata(path: str | Path) -> CheckpointInfo:
    """The JSON metadata of a checkpoint (path or shipped name), every field checked, without the weights.

    Raises:
        CheckpointError: missing, too large or too deeply nested, not JSON, or a field of the
            wrong type, out of range or missing.
    """
    weights_path, meta_path = _paths(resolve_model_path(path))
    if not meta_path.is_file():
        raise CheckpointError(f"checkpoint metadata {meta_path} not found")
    metadata, _ = _read_checked_metadata(meta_path)
    return CheckpointInfo(weights_path, metadata)


def _check_robot(robot: dict[str, Any], chain: KinematicChain, weights_path: Path) -> None:
    if robot.get("kinematics_hash") is not None and robot["kinematics_hash"] == chain.kinematics_hash:
        return  # same joint origins, axes, types and limits: names and URDF text may differ (prefixes, xacro output)
    problems = []
    if robot["urdf_hash"] != chain.source_hash:
        problems.append("robot description differs (URDF hash, and kinematics: joint origins, axes or limits)")
    if (robot["base_link"], robot["tip_link"]) != (chain.base_link, chain.tip_link):
        problems.append(f"chain {robot['base_link']}->{robot['tip_link']} vs {chain.base_link}->{chain.tip_link}")
    if list(robot["joint_names"]) != list(chain.joint_names):
        problems.append(f"joints {robot['joint_names']} vs {list(chain.joint_names)}")
    if problems:
        raise CheckpointError(f"checkpoint {weights_path.name} was trained for robot {robot['name']!r}, not this {chain.name!r} chain: " + "; ".join(problems))


def _build_on_meta(description: ModelDescription, meta_path: Path) -> IKGenerator:
    """The model described, its parameters on the ``meta`` device: exact shapes, no storage."""
    try:
        with torch.device("meta"):
            return build_generator(description.config, description.encoder, description.codec).to(description.dtype)
    except Exception as exc:  # noqa: BLE001 - any refusal of a described architecture is the file's fault
        raise CheckpointError(f"{meta_path}: invalid model description: {exc if isinstance(exc, ValueError) else f'{type(exc).__name__}: {exc}'}") from exc


def _read_weights(weights_path: Path, model: IKGenerator, dtype: torch.dtype, digest: str) -> dict[str, torch.Tensor]:
    """The weights of ``model`` (built on meta) from ``weights_path``, the header checked before
    reading; each returned tensor owns its memory and has the layout of the module's tensor."""
    from safetensors.torch import load

    reference = model.state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items()}
    itemsize = torch.empty((), dtype=dtype).element_size()
    need = sum(math.prod(shape) for shape in expected.values()) * itemsize
    try:
        size = weights_path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"cannot read weights {weights_path}: {exc.strerror or exc}") from exc
    # from the size alone, before reading a byte: a 64 GiB file costs nothing
    if size > MAX_WEIGHTS_BYTES:
        raise CheckpointError(f"weights {weights_path} is {size} bytes, more than the {MAX_WEIGHTS_BYTES} accepted")
    if not 8 + need < size <= 8 + MAX_HEADER_BYTES + need:
        raise CheckpointError(f"{weights_path}: weights do not fit the recorded architecture: model_config implies {need} bytes of weights, the file has {size} bytes")
    header = read_weights_header(weights_path)
    check_weights_header(header, expected, dtype, weights_path)
    blob = read_bounded(weights_path, header.file_size, "weights")
    if len(blob) != header.file_size or not blob.startswith(header.header):
        raise CheckpointError(f"{weights_path}: the weights file changed while it was read")
    if hashlib.sha256(blob).hexdigest() != digest:
        raise CheckpointError(f"{weights_path}: weights do not match the SHA-256 recorded in its JSON (corrupt or from another checkpoint)")
    try:
        loaded = load(blob)  # safetensors' own checks after ours; its tensors view read-only buffers
    except Exception as exc:  # noqa: BLE001 - SafetensorError and whatever else the parser raises
        raise CheckpointError(f"{weights_path}: not a valid safetensors file: {exc}") from exc
    del blob
    tensors = {}
    for name, ref in reference.items():
        t = loaded.pop(name)
        if not bool(torch.isfinite(t).all()):
            # a model with NaN / inf weights answers every request with NaN: refused here, not per request
            raise CheckpointError(f"{weights_path}: tensor {name} holds non-finite values (NaN or inf)")
        # the module's layout (FrEIA's inverse permutations are transposed views): a product's
        # rounding depends on it, and a loaded model must compute exactly what the saved one did
        tensors[name] = torch.empty_strided(ref.shape, ref.stride(), dtype=ref.dtype).copy_(t)
    return tensors


def checkpoint_files(path: str | Path) -> tuple[Path, Path]:
    """The (weights, metadata) paths of checkpoint ``path`` (path or shipped name); both must exist.

    Raises:
        CheckpointError: no such checkpoint, or one of its two files is missing.
    """
    weights_path, meta_path = _paths(resolve_model_path(path))
    if not meta_path.is_file() or not weights_path.is_file():
        raise CheckpointError(f"checkpoint {str(weights_path.with_suffix(''))!r} needs both {weights_path.name} and {meta_path.name}")
    return weights_path, meta_path


def load_checkpoint(
    path: str | Path,
    chain: KinematicChain | None = None,
    device: torch.device | str = "cpu",
) -> tuple[IKGenerator, CheckpointInfo]:
    """Rebuild the model of a checkpoint and load its weights (never unpickles).

    Nothing is allocated for the model before the weights file's header is found to hold exactly
    the tensors the configuration implies; the weights are then read and become the model's
    parameters (no random initialization): at most twice the weights file's size is held at once.

    Args:
        path: checkpoint path (with or without extension) or shipped model name.
        chain: if given, the robot the caller will use; a checkpoint for another robot is refused.
        device: where to put the model.

    Raises:
        CheckpointError: missing / corrupt / malformed files (any field of the wrong type or out of
            range, JSON too large or nested too deeply, a weights file too large or whose header
            does not match the architecture), unknown format, weights that do not match the
            recorded hash or are not finite, or a robot mismatch.  Nothing else, whatever the files.
    """
    weights_path, meta_path = checkpoint_files(path)
    metadata, description = _read_checked_metadata(meta_path)
    if chain is not None:
        _check_robot(metadata["robot"], chain, weights_path)
    model = _build_on_meta(description, meta_path)
    tensors = _read_weights(weights_path, model, description.dtype, metadata["weights_sha256"])
    try:
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights_path}: weights do not fit the recorded architecture: {exc}") from exc
    left = [f"{name}.{key}" for name, m in model.named_modules() for key, v in vars(m).items() if isinstance(v, torch.Tensor) and v.is_meta]
    left += [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    assert not left, f"model tensors outside the state dict left on the meta device: {left}"
    model.to(device)
    model.eval()
    return model, CheckpointInfo(weights_path, metadata)
