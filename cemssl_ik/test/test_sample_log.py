"""The learner's sample log: every acknowledged sample survives a crash (kill -9 of a real writer)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from cemssl_ik.learning.sample_log import Sample, SampleLog, SampleLogError


def _sample(i: int, kind: str = "identify") -> Sample:
    q = np.full(6, 0.01 * i)
    return Sample(q, q + 1e-4, np.array([0.1, 0.2, 0.3 + i]), np.array([0.0, 0.0, 0.0, 1.0]), i % 7 != 3, kind, stamp=float(i))


def test_round_trip_and_append_after_reopen(tmp_path):
    path = tmp_path / "run" / "samples.jsonl"
    with SampleLog.open(path) as log:
        for i in range(5):
            log.append(_sample(i))
    with SampleLog.open(path, dof=6) as log:
        assert len(log) == 5 and not log.dropped_tail
        assert log.samples[3].valid is False and log.samples[4].position[2] == pytest.approx(4.3)
        log.append(_sample(5, "evaluate"))
        q, p, quat = log.arrays("identify")
        assert q.shape == (4, 6) and p.shape == (4, 3) and quat.shape == (4, 4)  # sample 3 invalid
        assert log.arrays("evaluate")[0].shape == (1, 6)
    assert len(SampleLog.open(path).samples) == 6


def test_torn_tail_is_dropped_damage_elsewhere_is_an_error(tmp_path):
    path = tmp_path / "samples.jsonl"
    with SampleLog.open(path) as log:
        for i in range(3):
            log.append(_sample(i))
    whole = path.read_bytes()
    path.write_bytes(whole + whole.splitlines(keepends=True)[0][:40])  # a crash mid-write
    log = SampleLog.open(path)
    assert len(log) == 3 and log.dropped_tail and path.read_bytes() == whole
    log.close()
    lines = whole.splitlines(keepends=True)
    rec = json.loads(lines[1])
    rec["sample"] = rec["sample"].replace("0.2", "0.7")  # content changed, CRC kept
    path.write_bytes(lines[0] + (json.dumps(rec) + "\n").encode() + lines[2])
    with pytest.raises(SampleLogError, match="line 2: CRC"):
        SampleLog.open(path)
    path.write_bytes(whole)
    with pytest.raises(SampleLogError, match="joints|numbers"):
        SampleLog.open(path, dof=7)
    with SampleLog.open(path) as log, pytest.raises(SampleLogError, match="joints"):
        log.append(Sample(np.zeros(5), np.zeros(5), np.zeros(3), np.array([0, 0, 0, 1.0]), True))


@pytest.mark.parametrize("line", [b"[1, 2]", b'{"crc": 1}', b"{" * 100_000, b'{"crc": 0, "sample": "{}"}', b"x" * 20_000])
def test_hostile_lines_are_refused(tmp_path, line):
    path = tmp_path / "samples.jsonl"
    path.write_bytes(line + b"\n" + _encode_one())
    with pytest.raises(SampleLogError):
        SampleLog.open(path)


def _encode_one() -> bytes:
    from cemssl_ik.learning.sample_log import _encode

    return _encode(_sample(1))


WRITER = """
import sys, numpy as np
from cemssl_ik.learning.sample_log import Sample, SampleLog
log = SampleLog.open(sys.argv[1], dof=6)
i = len(log)
while True:
    q = np.full(6, 0.001 * i)
    log.append(Sample(q, q, np.array([0.1, 0.2, float(i)]), np.array([0.0, 0.0, 0.0, 1.0]), True, "identify", float(i)))
    print(i, flush=True)  # acknowledged: on disk
    i += 1
"""


def test_kill_9_loses_no_acknowledged_sample(tmp_path):
    path = tmp_path / "samples.jsonl"
    acknowledged = -1
    for _ in range(2):  # crash, restart, crash again
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        start = acknowledged
        while acknowledged < start + 50 and time.monotonic() < deadline:
            acknowledged = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert acknowledged >= start + 50, "writer too slow"
        with SampleLog.open(path, dof=6) as log:
            assert len(log) >= acknowledged + 1
            assert [s.position[2] for s in log.samples] == [float(i) for i in range(len(log))]  # in order, none lost
