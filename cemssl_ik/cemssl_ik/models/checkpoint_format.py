"""The checkpoint files as untrusted data: bounded JSON, the metadata schema, the safetensors header.

A checkpoint may come from anywhere (a path on the command line, a model announced on a topic), so
it is checked before it costs anything:

- the JSON metadata's size (:data:`MAX_METADATA_BYTES`) and nesting depth (:data:`MAX_JSON_DEPTH`)
  before it is parsed, then the type and range of every field (:func:`check_metadata`);
- the weights file's size (:data:`MAX_WEIGHTS_BYTES`) and its safetensors header alone (tensor
  names, dtypes, shapes, offsets) against the parameters the model description implies, before
  the weights are read (:func:`check_weights_header`).

Every failure raises :class:`CheckpointError` with a one-line message.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .encoding import OUTPUT_KINDS, JointCodec, TargetEncoder
from .generators import METHODS, ModelConfig

__all__ = [
    "FORMAT_VERSION",
    "MAX_METADATA_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_WEIGHTS_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_DOF",
    "DTYPES",
    "CheckpointError",
    "ModelDescription",
    "read_bounded",
    "parse_json",
    "check_metadata",
    "WeightsHeader",
    "read_weights_header",
    "check_weights_header",
]

FORMAT_VERSION = 1

#: largest metadata JSON read (bytes); the shipped ones are under 20 kB (learning curves live in a sidecar), records written before recipes carried their history and reached 0.7 MB
MAX_METADATA_BYTES = 8 << 20
#: deepest nesting of JSON arrays / objects (records written before recipes nested each fine-tune's source record: ~4 levels)
MAX_JSON_DEPTH = 200
#: largest weights file (bytes): 268 million float32 parameters, far above any IK model (shipped: <= 7 MB)
MAX_WEIGHTS_BYTES = 1 << 30
#: largest safetensors header (bytes): ~100 bytes per tensor
MAX_HEADER_BYTES = 4 << 20
#: most joints of a checkpoint's robot
MAX_DOF = 64
#: longest string field of the robot description (names, hashes)
MAX_NAME_CHARS = 1024

#: metadata ``dtype`` -> (torch dtype, safetensors dtype code); no other dtype is accepted
DTYPES = {"float32": (torch.float32, "F32"), "float64": (torch.float64, "F64"), "float16": (torch.float16, "F16"), "bfloat16": (torch.bfloat16, "BF16")}

_REQUIRED = ("format_version", "robot", "method", "model_config", "target_encoder", "output", "dtype", "weights_sha256")
_OPTIONAL = {"created": str, "versions": dict, "training": dict}
_ROBOT_STRINGS = ("name", "urdf_hash", "base_link", "tip_link")
_ROBOT_VECTORS = ("lower", "upper", "learning_lower", "learning_upper")
_ENCODER_KEYS = ("kind", "mean", "scale", "axis_point", "axis")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, malformed, of an unknown format, or for another robot.

    The message is one line (whitespace collapsed) of at most 1000 characters.
    """

    def __init__(self, message: str) -> None:
        text = " ".join(str(message).split())
        super().__init__(text if len(text) <= 1000 else text[:997] + "...")


def _short(value: Any, limit: int = 60) -> str:
    """repr of a value from a file, cut to ``limit`` characters (a field may hold megabytes)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for str(): the JSON parser lets through up to 4300 digits
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_finite_number(v: Any) -> bool:
    if _is_int(v):
        return abs(v) <= 2**53
    return isinstance(v, float) and math.isfinite(v)


# -- bounded reading -----------------------------------------------------------------------------


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (its size is checked before reading).

    Opened non-blocking, so that a FIFO put in a checkpoint's place is refused rather than waited on.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise CheckpointError(f"cannot open {what} {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(f"{what} {path} is not a regular file")
        if st.st_size > limit:
            raise CheckpointError(f"{what} {path} is {st.st_size} bytes, more than the {limit} accepted")
        try:
            data = f.read(st.st_size + 1)  # one byte more: a file that grew since fstat is seen
        except OSError as exc:
            raise CheckpointError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    if len(data) > st.st_size:
        raise CheckpointError(f"{what} {path} grew while it was read")
    return data


def json_depth_exceeds(data: bytes, limit: int) -> bool:
    """Whether the arrays / objects of JSON text ``data`` nest deeper than ``limit`` (without parsing).

    One pass over the bytes in chunks of 64 kB, vectorized, no recursion and no temporaries beyond a
    chunk's: a quote ends or starts a string unless an odd run of backslashes precedes it; a
    bracket counts outside strings only.  On invalid JSON the answer may be either; the parser
    refuses that text anyway.
    """
    buf = np.frombuffer(data, np.uint8)
    depth, run, in_string, chunk = 0, 0, 0, 1 << 16  # carried: depth, trailing backslash run, string parity
    for start in range(0, len(buf), chunk):
        a = buf[start : start + chunk]
        bs = a == ord("\\")
        count = np.cumsum(bs, dtype=np.int64)
        # backslashes in the run ending at each position (the run carried in while none other came)
        run_end = count - np.maximum.accumulate(np.where(bs, 0, count))
        run_end += np.where(np.cumsum(~bs, dtype=np.int64) == 0, run, 0)
        run_before = np.concatenate(([run], run_end[:-1]))
        quote = (a == ord('"')) & (run_before % 2 == 0)
        inside = (in_string + np.cumsum(quote, dtype=np.int64)) % 2 == 1
        step = np.where((a == ord("[")) | (a == ord("{")), 1, 0) - np.where((a == ord("]")) | (a == ord("}")), 1, 0)
        running = depth + np.cumsum(np.where(inside, 0, step), dtype=np.int64)
        if int(running.max()) > limit:
            return True
        depth, run, in_string = int(running[-1]), int(run_end[-1]), int(inside[-1])
    return False


def parse_json(data: bytes, where: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text that was read with :func:`read_bounded`; nesting beyond ``max_depth`` is refused first."""
    if json_depth_exceeds(data, max_depth):
        raise CheckpointError(f"{where} is not valid JSON: nested deeper than {max_depth} levels")
    try:
        return json.loads(data)
    except RecursionError as exc:  # not reached below max_depth; kept so that no parse can escape as one
        raise CheckpointError(f"{where} is not valid JSON: nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, an int beyond Python's digit limit
        raise CheckpointError(f"{where} is not valid JSON: {exc}") from exc


# -- metadata ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelDescription:
    """What the metadata says the model is: checked, typed, nothing allocated yet.

    Attributes:
        config: architecture.
        encoder: target encoding (workspace statistics, symmetry axis).
        codec: joint output encoding (learning limits of the robot).
        dtype: dtype of every weight.
    """

    config: ModelConfig
    encoder: TargetEncoder
    codec: JointCodec
    dtype: torch.dtype


def _numbers(value: Any, n: int | None, what: str, where: str) -> list[float]:
    if not isinstance(value, list) or (n is not None and len(value) != n) or not all(_is_finite_number(v) for v in value):
        size = "a list" if n is None else f"a list of {n}"
        raise CheckpointError(f"{where}: {what} must be {size} finite numbers, got {_short(value)}")
    return [float(v) for v in value]


def _number(value: Any, what: str, where: str) -> float:
    if not _is_finite_number(value):
        raise CheckpointError(f"{where}: {what} must be a finite number, got {_short(value)}")
    return float(value)


def _check_robot(robot: Any, where: str) -> int:
    """Check the ``robot`` record; returns its number of joints."""
    if not isinstance(robot, dict):
        raise CheckpointError(f"{where}: 'robot' must be a JSON object, got {_short(robot)}")
    missing = [k for k in (*_ROBOT_STRINGS, "joint_names", *_ROBOT_VECTORS, "periodic") if k not in robot]
    if missing:
        raise CheckpointError(f"{where}: robot record lacks {missing}")
    for key in (*_ROBOT_STRINGS, "kinematics_hash"):
        value = robot.get(key)
        if key == "kinematics_hash" and value is None:
            continue  # older checkpoints have none
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_CHARS:
            raise CheckpointError(f"{where}: robot {key!r} must be a non-empty string of at most {MAX_NAME_CHARS} characters, got {_short(value)}")
    names = robot["joint_names"]
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_DOF or not all(isinstance(n, str) and len(n) <= MAX_NAME_CHARS for n in names):
        raise CheckpointError(f"{where}: robot 'joint_names' must be a list of 1 to {MAX_DOF} strings, got {_short(names)}")
    dof = len(names)
    for key in _ROBOT_VECTORS:
        _numbers(robot[key], dof, f"robot {key!r}", where)
    periodic = robot["periodic"]
    if not isinstance(periodic, list) or len(periodic) != dof or not all(isinstance(v, bool) for v in periodic):
        raise CheckpointError(f"{where}: robot 'periodic' must be a list of {dof} booleans, got {_short(periodic)}")
    # a generated robot is rebuilt from its name alone: its size must be the recorded one
    m = re.fullmatch(r"(planar|artificial)(\d+)", robot["name"])
    if m and int(m.group(2)) != dof:
        raise CheckpointError(f"{where}: robot {robot['name']!r} does not match its {dof} recorded joints")
    return dof


def _encoder(record: Any, where: str) -> TargetEncoder:
    if not isinstance(record, dict):
        raise CheckpointError(f"{where}: 'target_encoder' must be a JSON object, got {_short(record)}")
    unknown = sorted(set(record) - set(_ENCODER_KEYS))
    if unknown or "kind" not in record or "mean" not in record or "scale" not in record:
        raise CheckpointError(f"{where}: 'target_encoder' needs kind, mean, scale [, axis_point, axis], got keys {sorted(record)[:10]}")
    if not isinstance(record["kind"], str):
        raise CheckpointError(f"{where}: target_encoder 'kind' must be a string, got {_short(record['kind'])}")
    mean = _numbers(record["mean"], 3, "target_encoder 'mean'", where)
    scale = _number(record["scale"], "target_encoder 'scale'", where)
    axis = {k: None if record.get(k) is None else tuple(_numbers(record[k], 3, f"target_encoder {k!r}", where)) for k in ("axis_point", "axis")}
    try:
        return TargetEncoder(record["kind"], tuple(mean), scale, axis["axis_point"], axis["axis"])
    except ValueError as exc:
        raise CheckpointError(f"{where}: invalid target_encoder: {exc}") from exc


def check_metadata(metadata: Any, where: str) -> ModelDescription:
    """Check every field of a checkpoint's parsed metadata; returns the model it describes.

    Raises:
        CheckpointError: not a checkpoint description, another format version, a missing or
            unknown field, a field of the wrong type or out of range.
    """
    if not isinstance(metadata, dict) or "robot" not in metadata:
        raise CheckpointError(f"{where}: not a cemssl_ik checkpoint description")
    version = metadata.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        raise CheckpointError(f"{where}: unsupported checkpoint format version {_short(version)} (this cemssl_ik reads {FORMAT_VERSION})")
    missing = [k for k in _REQUIRED if k not in metadata]
    unknown = sorted(set(metadata) - set(_REQUIRED) - set(_OPTIONAL))
    if missing or unknown:
        raise CheckpointError(f"{where}: checkpoint metadata lacks {missing} or has unknown keys {unknown[:10]}")
    for key, kind in _OPTIONAL.items():
        if key in metadata and not isinstance(metadata[key], kind):
            raise CheckpointError(f"{where}: {key!r} must be a JSON {'object' if kind is dict else 'string'}, got {_short(metadata[key])}")
    digest = metadata["weights_sha256"]
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise CheckpointError(f"{where}: 'weights_sha256' must be 64 lowercase hex digits, got {_short(digest)}")
    dtype = metadata["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise CheckpointError(f"{where}: 'dtype' must be one of {sorted(DTYPES)}, got {_short(dtype)}")
    method, output = metadata["method"], metadata["output"]
    if not isinstance(method, str) or method not in METHODS:
        raise CheckpointError(f"{where}: 'method' must be one of {METHODS}, got {_short(method)}")
    if not isinstance(output, str) or output not in OUTPUT_KINDS:
        raise CheckpointError(f"{where}: 'output' must be one of {OUTPUT_KINDS}, got {_short(output)}")
    _check_robot(metadata["robot"], where)
    try:
        config = ModelConfig.from_dict(metadata["model_config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: invalid model_config: {exc}") from exc
    if (config.method, config.output) != (method, output):
        raise CheckpointError(f"{where}: 'method' / 'output' {method!r} / {output!r} differ from model_config's {config.method!r} / {config.output!r}")
    encoder = _encoder(metadata["target_encoder"], where)
    if (encoder.kind, encoder.symmetric) != (config.target, config.base_symmetry):
        raise CheckpointError(
            f"{where}: target_encoder (kind {encoder.kind!r}, symmetry axis: {encoder.symmetric}) does not match config target {config.target!r} with base_symmetry {config.base_symmetry}"
        )
    robot = metadata["robot"]
    try:
        codec = JointCodec(robot["learning_lower"], robot["learning_upper"], robot["periodic"], output)
    except ValueError as exc:
        raise CheckpointError(f"{where}: invalid robot learning limits: {exc}") from exc
    return ModelDescription(config, encoder, codec, DTYPES[dtype][0])


# -- weights header ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightsHeader:
    """The safetensors header of a weights file.

    Attributes:
        file_size: size of the whole file (bytes).
        header: the header's raw bytes (8-byte length + JSON), to compare with what is read later.
        tensors: name -> (safetensors dtype code, shape, (begin, end) byte offsets in the data part).
    """

    file_size: int
    header: bytes
    tensors: dict[str, tuple[str, tuple[int, ...], tuple[int, int]]]


def read_weights_header(path: Path) -> WeightsHeader:
    """Read and parse only the header of a safetensors file (at most :data:`MAX_HEADER_BYTES`).

    The file's size is checked against :data:`MAX_WEIGHTS_BYTES` before anything is read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise CheckpointError(f"cannot open weights {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(f"weights {path} is not a regular file")
        size = st.st_size
        if size > MAX_WEIGHTS_BYTES:
            raise CheckpointError(f"weights {path} is {size} bytes, more than the {MAX_WEIGHTS_BYTES} accepted")
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: not a valid safetensors file: {size} bytes, shorter than its 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise CheckpointError(f"{path}: not a valid safetensors file: header length {n} beyond the file ({size} bytes) or the {MAX_HEADER_BYTES} accepted")
        text = f.read(n)
    if len(text) != n:
        raise CheckpointError(f"{path}: not a valid safetensors file: truncated header")
    raw = parse_json(text, f"{path}: safetensors header", max_depth=4)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: not a valid safetensors file: its header is not a JSON object")
    tensors = {}
    for name, entry in raw.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise CheckpointError(f"{path}: not a valid safetensors file: __metadata__ must map strings to strings")
            continue
        ok = isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}
        ok = ok and isinstance(entry["dtype"], str) and isinstance(entry["shape"], list) and len(entry["shape"]) <= 8
        ok = ok and all(_is_int(d) and 0 <= d <= MAX_WEIGHTS_BYTES for d in entry["shape"])
        ok = ok and isinstance(entry["data_offsets"], list) and len(entry["data_offsets"]) == 2
        ok = ok and all(_is_int(o) and 0 <= o <= size for o in entry["data_offsets"]) and entry["data_offsets"][0] <= entry["data_offsets"][1]
        if not ok:
            raise CheckpointError(f"{path}: not a valid safetensors file: tensor {_short(name)} has the entry {_short(entry)}")
        tensors[name] = (entry["dtype"], tuple(entry["shape"]), tuple(entry["data_offsets"]))
    return WeightsHeader(size, head + text, tensors)


def check_weights_header(header: WeightsHeader, expected: dict[str, tuple[int, ...]], dtype: torch.dtype, path: Path) -> None:
    """Check that the file holds exactly the tensors ``expected`` (name -> shape) in ``dtype``,
    contiguously, and nothing else: its declared size is then the model's size.

    Raises:
        CheckpointError: a tensor missing, unexpected, of another shape or dtype, offsets that
            overlap, leave gaps or disagree with the shape, or a file size other than declared.
    """
    code = next(c for t, c in DTYPES.values() if t == dtype)
    itemsize = torch.empty((), dtype=dtype).element_size()
    missing = sorted(set(expected) - set(header.tensors))
    unexpected = sorted(set(header.tensors) - set(expected))
    if missing or unexpected:
        def names(keys: list[str]) -> str:
            return "[" + ", ".join(_short(k, 40) for k in keys[:5]) + (", ...]" if len(keys) > 5 else "]")

        raise CheckpointError(f"{path}: weights do not fit the recorded architecture: missing tensors {names(missing)}, unexpected {names(unexpected)}")
    spans = []
    for name, shape in expected.items():
        got_dtype, got_shape, (begin, end) = header.tensors[name]
        if got_shape != tuple(shape):
            raise CheckpointError(f"{path}: weights do not fit the recorded architecture: tensor {name} is {got_shape} in the file, {tuple(shape)} in model_config")
        if got_dtype != code:
            raise CheckpointError(f"{path}: tensor {name} is {_short(got_dtype, 20)} in the file, but the metadata's dtype is {code}")
        if end - begin != math.prod(shape) * itemsize:
            raise CheckpointError(f"{path}: not a valid safetensors file: tensor {name} spans {end - begin} bytes, its shape {tuple(shape)} needs {math.prod(shape) * itemsize}")
        spans.append((begin, end))
    data_size = header.file_size - len(header.header)
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise CheckpointError(f"{path}: not a valid safetensors file: tensor data {'overlaps' if begin < position else 'has a gap'} at byte {begin}")
        position = end
    if position != data_size:
        raise CheckpointError(f"{path}: the header declares {position} bytes of tensor data, the file holds {data_size} (truncated or padded)")
