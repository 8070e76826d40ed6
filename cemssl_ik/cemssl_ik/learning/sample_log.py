"""Crash-safe log of robot measurements: every sample is on disk before the next move.

One JSON object a line (commanded and measured joints, measured tool pose, validity, what the
sample was for), each with a CRC-32 of its content, flushed and fsync'ed as it is appended.  A
process killed mid-write leaves at most a partial last line: :meth:`SampleLog.open` drops it (that
sample was never acknowledged) and appends after the last whole line, so a restarted learner keeps
every recorded sample.  A damaged line anywhere else is an error, never silently skipped.

The format is text: readable with any JSON tool, never unpickled, validated line by line before
anything is allocated for it.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Sample", "SampleLog", "SampleLogError"]

#: longest line accepted (a 6-DoF sample is ~400 bytes; a 64-joint one stays well below)
MAX_LINE_BYTES = 16_384
#: largest log read at once (about 2.5 million 6-DoF samples)
MAX_LOG_BYTES = 1 << 30
KINDS = ("identify", "evaluate", "cemssl", "other")


class SampleLogError(ValueError):
    """The log is damaged (not at its tail) or a sample is malformed."""


@dataclass(frozen=True)
class Sample:
    """One robot move and what was measured after it.

    Attributes:
        q_command: (dof,) joint values sent, radians / metres.
        q: (dof,) joint values measured once the arm settled.
        position: (3,) measured tool position, metres, chain base frame.
        quaternion: (4,) measured tool orientation x y z w.
        valid: False if the move or the measurement failed (timeout, refused, lost).
        kind: what the sample was taken for: ``identify``, ``evaluate``, ``cemssl`` or ``other``.
        stamp: seconds (the measuring clock's), for the record.
    """

    q_command: np.ndarray
    q: np.ndarray
    position: np.ndarray
    quaternion: np.ndarray
    valid: bool
    kind: str = "other"
    stamp: float = 0.0

    def to_record(self) -> dict:
        return {
            "q_command": [float(v) for v in self.q_command],
            "q": [float(v) for v in self.q],
            "position": [float(v) for v in self.position],
            "quaternion": [float(v) for v in self.quaternion],
            "valid": bool(self.valid),
            "kind": self.kind,
            "stamp": float(self.stamp),
        }

    @staticmethod
    def from_record(rec: dict, dof: int | None = None) -> "Sample":
        if not isinstance(rec, dict) or set(rec) != {"q_command", "q", "position", "quaternion", "valid", "kind", "stamp"}:
            raise SampleLogError(f"sample fields must be q_command, q, position, quaternion, valid, kind, stamp; got {sorted(rec) if isinstance(rec, dict) else type(rec).__name__}")

        def vec(name: str, n: int | None) -> np.ndarray:
            v = rec[name]
            if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v) or (n is not None and len(v) != n) or len(v) > 256:
                raise SampleLogError(f"sample field {name!r} must be a list of {n if n is not None else 'some'} numbers")
            return np.asarray(v, dtype=np.float64)

        q_command = vec("q_command", dof)
        q = vec("q", len(q_command))
        if not isinstance(rec["valid"], bool) or rec["kind"] not in KINDS or not isinstance(rec["stamp"], (int, float)):
            raise SampleLogError("sample fields valid (bool), kind (one of " + ", ".join(KINDS) + ") or stamp (number) malformed")
        return Sample(q_command, q, vec("position", 3), vec("quaternion", 4), rec["valid"], rec["kind"], float(rec["stamp"]))


def _encode(sample: Sample) -> bytes:
    body = json.dumps(sample.to_record(), separators=(",", ":"), allow_nan=True)
    return json.dumps({"crc": zlib.crc32(body.encode()), "sample": body}, separators=(",", ":")).encode() + b"\n"


def _decode(line: bytes, dof: int | None) -> Sample:
    if len(line) > MAX_LINE_BYTES:
        raise SampleLogError(f"line of {len(line)} bytes (at most {MAX_LINE_BYTES})")
    try:
        outer = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise SampleLogError(f"not JSON: {exc}") from None
    if not isinstance(outer, dict) or set(outer) != {"crc", "sample"} or not isinstance(outer["sample"], str) or not isinstance(outer["crc"], int):
        raise SampleLogError("a line must be {\"crc\": int, \"sample\": str}")
    if zlib.crc32(outer["sample"].encode()) != outer["crc"]:
        raise SampleLogError("CRC mismatch")
    try:
        rec = json.loads(outer["sample"])
    except (ValueError, RecursionError) as exc:
        raise SampleLogError(f"sample not JSON: {exc}") from None
    return Sample.from_record(rec, dof)


class SampleLog:
    """Append-only, fsync'ed sample log (see the module docstring).

    Use :meth:`open` (reads what is there, repairs a torn tail, then appends)::

        log = SampleLog.open(out_dir / "samples.jsonl", dof=6)
        log.samples          # everything recorded before, in order
        log.append(sample)   # on disk when this returns
    """

    def __init__(self, path: Path, samples: list[Sample], dof: int | None, dropped_tail: bool) -> None:
        self.path = path
        self.samples = samples
        self.dof = dof
        #: True when :meth:`open` found and removed a partial last line (a crash mid-write)
        self.dropped_tail = dropped_tail
        self._file = open(path, "ab")  # noqa: SIM115 - closed in close()

    @classmethod
    def open(cls, path: str | Path, dof: int | None = None) -> "SampleLog":
        """Open (or create) the log at ``path``: read and validate it, drop a torn last line.

        Raises:
            SampleLogError: a damaged line before the last, samples of another joint count, or a
                log larger than ``MAX_LOG_BYTES``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        samples: list[Sample] = []
        dropped = False
        if path.exists():
            size = path.stat().st_size
            if size > MAX_LOG_BYTES:
                raise SampleLogError(f"{path}: {size} bytes, more than the {MAX_LOG_BYTES} a log may hold")
            data = path.read_bytes()
            lines = data.split(b"\n")
            tail = lines.pop()  # after the last newline: b"" for a whole log, a torn line otherwise
            good_bytes = len(data) - len(tail)
            for i, line in enumerate(lines):
                try:
                    samples.append(_decode(line, dof))
                except SampleLogError as exc:
                    if i == len(lines) - 1 and not tail:
                        # the last line has its newline but not its content (a crash between them is
                        # impossible for one write(), but a file system may reorder): treat as torn
                        good_bytes -= len(line) + 1
                        dropped = True
                        break
                    raise SampleLogError(f"{path}: line {i + 1}: {exc}") from None
                if dof is None:
                    dof = len(samples[0].q)
            if tail:
                dropped = True
            if dropped:
                with open(path, "r+b") as f:
                    f.truncate(good_bytes)
                    f.flush()
                    os.fsync(f.fileno())
        return cls(path, samples, dof, dropped)

    def append(self, sample: Sample) -> None:
        """Write one sample and fsync it (a crash after this returns loses nothing)."""
        if self.dof is not None and len(sample.q) != self.dof:
            raise SampleLogError(f"sample has {len(sample.q)} joints, the log {self.dof}")
        if sample.kind not in KINDS:
            raise SampleLogError(f"kind must be one of {KINDS}, got {sample.kind!r}")
        self._file.write(_encode(sample))
        self._file.flush()
        os.fsync(self._file.fileno())
        self.samples.append(sample)
        self.dof = len(sample.q)

    def arrays(self, kind: str | None = None, valid_only: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(q (N, dof), position (N, 3), quaternion (N, 4)) of the recorded samples of a kind."""
        rows = [s for s in self.samples if (kind is None or s.kind == kind) and (s.valid or not valid_only)]
        rows = [s for s in rows if np.all(np.isfinite(s.q)) and np.all(np.isfinite(s.position)) and np.all(np.isfinite(s.quaternion))]
        dof = self.dof or 0
        if not rows:
            return np.zeros((0, dof)), np.zeros((0, 3)), np.zeros((0, 4))
        return np.stack([s.q for s in rows]), np.stack([s.position for s in rows]), np.stack([s.quaternion for s in rows])

    def __len__(self) -> int:
        return len(self.samples)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "SampleLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
