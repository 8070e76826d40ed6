"""`cemssl-ik` command line: fk and ik-analytic output formats and errors (real subprocesses)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from cemssl_ik.kinematics import load_robot, matrix_to_quaternion


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cemssl_ik.cli", *args], capture_output=True, text=True, timeout=120)


def test_fk_json_matches_library():
    q = [0.1, -1.2, 0.9, -0.4, 1.3, 0.2]
    out = run_cli("fk", "--robot", "ur3", *map(str, q), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    fk = load_robot("ur3").forward(torch.tensor(q, dtype=torch.float64))
    assert data["position"] == pytest.approx(fk.position.tolist(), abs=1e-12)
    assert data["quaternion"] == pytest.approx(matrix_to_quaternion(fk.rotation).tolist(), abs=1e-12)
    assert (data["base"], data["tip"]) == ("base_link", "tool0")


def test_fk_other_frames_and_bad_input():
    out = run_cli("fk", "--base", "base", "--tip", "flange", "0", "0", "0", "0", "0", "0", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["base"] == "base"
    out = run_cli("fk", "1", "2")
    assert out.returncode == 2 and "has 6 joints" in out.stderr
    out = run_cli("fk", "--tip", "nope", "0", "0", "0", "0", "0", "0")
    assert out.returncode == 2 and "unknown tip link" in out.stderr
    out = run_cli("fk", "nan", "0", "0", "0", "0", "0")
    assert out.returncode == 2 and "finite" in out.stderr


def test_ik_analytic_json_round_trip():
    chain = load_robot("ur3")
    q = torch.tensor([0.4, -1.1, 1.4, -0.9, -1.2, 0.8], dtype=torch.float64)
    fk = chain.forward(q)
    pose = fk.position.tolist() + matrix_to_quaternion(fk.rotation).tolist()
    out = run_cli("ik-analytic", "--robot", "ur3", *map(str, pose), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert len(data["solutions"]) == 8 and sorted(data["branches"]) == list(range(8))
    assert max(data["position_errors"]) < 1e-9
    sols = torch.tensor(data["solutions"], dtype=torch.float64)
    assert (chain.forward(sols).position - fk.position).norm(dim=-1).max() < 1e-9
    assert any(torch.allclose(s, q, atol=1e-9) for s in sols)


def test_ik_analytic_errors():
    out = run_cli("ik-analytic", "0.2", "0.1", "0.3", "0", "0", "0", "0")
    assert out.returncode == 2 and "unit norm" in out.stderr
    out = run_cli("ik-analytic", "2", "0", "0.3", "0", "0", "0", "1", "--json")
    assert out.returncode == 1 and json.loads(out.stdout)["solutions"] == []


def test_bench_fk_runs_and_reports_every_implementation():
    out = run_cli("bench", "fk", "--batches", "1", "8", "--min-seconds", "0.01", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["rows"]
    impls = {r["impl"] for r in rows}
    assert "cemssl_ik" in impls and "pytorch_kinematics" in impls
    assert all(math.isfinite(r["configs_per_second"]) and r["configs_per_second"] > 0 for r in rows)
    assert {(r["dtype"], r["batch"]) for r in rows if r["impl"] == "cemssl_ik"} == {("float32", 1), ("float32", 8), ("float64", 1), ("float64", 8)}


NEGATIVE_SPELLINGS = [("-5e-05", -5e-05), ("-1E+3", -1e3), ("-2.5e-3", -2.5e-3), ("-.5", -0.5), ("-5.", -5.0), ("-7", -7.0), ("-0", -0.0), ("-1_000", -1000.0), ("-Infinity", -math.inf), ("-nan", math.nan)]


@pytest.mark.parametrize("spelling,value", NEGATIVE_SPELLINGS, ids=[s for s, _ in NEGATIVE_SPELLINGS])
def test_every_negative_float_spelling_is_a_value(spelling, value):
    """argparse's own pattern knows -5 and -.5 only; every float spelling reaches every numeric argument."""
    from cemssl_ik.cli import build_parser

    parser = build_parser()
    same = pytest.approx(value, nan_ok=True)
    assert parser.parse_args(["fk", "--robot", "ur3", "0.1", spelling, "0.3", "--json"]).joints[1] == same
    assert parser.parse_args(["ik-analytic", "0.1", "0.2", spelling, "0", "0", "0", "1"]).pose[2] == same
    args = parser.parse_args(["solve", "--model", "m", "-k", "4", "0.1", spelling, "0.3"])
    assert args.target[1] == same and args.k == 4
    args = parser.parse_args(["solve", "--model", "m", "--seed-joints", "0", spelling, "0", "0", "0", "0", "--json", "0.2", "0.1", "0.3"])
    assert args.seed_joints[1] == same and args.target == [0.2, 0.1, 0.3]


def test_negative_exponent_values_from_the_command_line():
    """The issue's reproducer, then non-finite values still refused with exit 2, and unknown options still errors."""
    q = [0.1, 0.2, 0.3, 0.4, -5e-05, 0.6]
    out = run_cli("fk", "--robot", "ur3", "0.1", "0.2", "0.3", "0.4", "-5e-05", "0.6", "--json")
    assert out.returncode == 0, out.stderr
    fk = load_robot("ur3").forward(torch.tensor(q, dtype=torch.float64))
    assert json.loads(out.stdout)["position"] == pytest.approx(fk.position.tolist(), abs=1e-12)
    out = run_cli("fk", "-inf", "0", "0", "0", "0", "-1E+3")
    assert out.returncode == 2 and "finite" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("fk", "-x", "0", "0", "0", "0", "0")
    assert out.returncode == 2 and "unrecognized arguments: -x" in out.stderr
