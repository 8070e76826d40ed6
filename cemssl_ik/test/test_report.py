"""`cemssl-ik bench report --quick`: the report's structure and sanity (never its timings)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from cemssl_ik.evaluation.report import SECTIONS
from cemssl_ik.evaluation.report.ur3_position import UR3_POSITION_MODELS


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    proc = subprocess.run([sys.executable, "-m", "cemssl_ik.cli", "bench", "report", "--quick", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "results" / "report.json").read_text()), (out / "RESULTS.md").read_text(), proc.stdout


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_every_section_ran_and_is_in_the_markdown(report):
    out, data, md, stdout = report
    assert set(data["sections"]) == set(SECTIONS)
    for heading in ("## UR3 position-only", "## EMSSL", "## Planar arms", "## Artificial chains", "## UR3 full pose", "## Speed"):
        assert heading in md
    assert data["machine"]["logical_cpus"] >= 1 and data["machine"]["versions"]["torch"]
    assert "| what | result |" in stdout and "RESULTS.md" in stdout
    for png in out.glob("results/*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    names = {p.name for p in out.glob("results/*.png")}
    assert {"ur3_position_error_cdf.png", "ur3_finetune_bars.png", "ur3_position_overlays.png", "ur3_position_cross_section.png", "emssl_learning_curves.png", "ur3_pose_overlays.png"} <= names
    for link in ("results/ur3_position_error_cdf.png", "results/emssl_learning_curves.png"):
        assert f"({link})" in md


def test_shipped_models_section_is_sane(report):
    _, data, _, _ = report
    models = data["sections"]["ur3_position"]["models"]
    assert set(models) == set(UR3_POSITION_MODELS)
    for r in models.values():
        e = r["position_error_mm"]
        assert all(_finite(e[k]) for k in ("mean", "median", "p95", "max")) and 0 < e["median"] <= e["p95"] <= e["max"]
        assert 0 <= r["class_coverage"] <= 1 and _finite(r["mmd"])
    # the shipped CEMSSL model is the most precise position model (it is, by 4x at least)
    assert models["ur3_fkloss_position"]["position_error_mm"]["mean"] < min(m["position_error_mm"]["mean"] for k, m in models.items() if k != "ur3_fkloss_position")


def test_trained_sections_have_finite_rows(report):
    _, data, _, _ = report
    sec = data["sections"]
    assert len(sec["emssl"]["table_ii"]) == 8 and all(_finite(r["position_error_mm"]["mean"]) for r in sec["emssl"]["table_ii"])
    assert [r["strategy"] for r in sec["emssl"]["table_iii"]] == ["none", "batch", "vectorized", "both"]
    assert all(_finite(r["mmd"]) and _finite(r["resimulation_error_mm"]["mean"]) and r["hull97_area_cm2"] >= 0 for r in sec["planar"]["rows"])
    pose_rows = [r for r in sec["artificial"]["rows"] if r["target"] == "pose"]
    assert pose_rows and all(_finite(r["orientation_error_deg"]["mean"]) for r in pose_rows)
    # the adaptation records are measured on the simulated arm's true kinematics, and kept in results/
    adapt = {r["strategy"]: r for r in sec["adaptation"]["records"]}
    assert set(adapt) == {"calibrate", "robot"} and all(r["link_change_cm"] == 5.0 and r["error_before_mm"] > 50 for r in adapt.values())
    assert adapt["calibrate"]["error_after_mm"] < 0.5 * adapt["calibrate"]["error_before_mm"] and adapt["calibrate"]["refined_error_mm"] < 1e-3


def test_peers_side_by_side_and_the_analytic_peer_is_exact(report):
    _, data, _, _ = report
    solvers = data["sections"]["ur3_pose"]["solvers"]
    an = solvers["analytic"]
    assert an["precise_fraction_of_returned"] == 1.0 and an["analytic_coverage"] == 1.0
    ours = solvers["cemssl_ik (K=32, refined)"]
    assert ours["precise_fraction_of_returned"] >= 0.999 and ours["analytic_coverage"] >= 0.9
    for name in ("trac_ik", "pytorch_kinematics", "ikpy"):
        assert name in solvers and ("absent" in solvers[name] or solvers[name]["targets"] >= 1)
    speed = data["sections"]["speed"]["rows"]
    assert all(r["solutions_per_second"] > 0 for r in speed if r["solver"].startswith("cemssl_ik"))


def test_update_reruns_only_the_named_sections(report):
    out, before, _, _ = report
    proc = subprocess.run([sys.executable, "-m", "cemssl_ik.cli", "bench", "report", "--quick", "--out", str(out), "--update", "--sections", "ur3_position"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = json.loads((out / "results" / "report.json").read_text())
    assert set(after["sections"]) == set(SECTIONS)  # nothing dropped
    assert after["sections"]["emssl"] == before["sections"]["emssl"]  # not rerun
    assert [u["sections"] for u in after["updates"]] == [["ur3_position"]]
    md = (out / "RESULTS.md").read_text()
    assert "sections ur3_position were run again" in md and "## EMSSL" in md
    bad = subprocess.run([sys.executable, "-m", "cemssl_ik.cli", "bench", "report", "--quick", "--out", str(out), "--update"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--sections" in bad.stderr


def test_trained_models_go_through_recipes_with_the_phase_defaults():
    """The report's own models are one-phase recipes: only the budget, the evaluation cadence and
    the listed CEMSSL settings differ from the phase config's defaults (no second set of defaults)."""
    import dataclasses
    from pathlib import Path

    from cemssl_ik.evaluation.report.base import Context
    from cemssl_ik.evaluation.report.scales import SCALES
    from cemssl_ik.evaluation.report.training import CEMSSL_FIELDS, METHODS, recipe_for
    from cemssl_ik.kinematics import planar_arm
    from cemssl_ik.learning.recipe import PHASE_KINDS

    ctx = Context(SCALES["quick"], Path("unused"), 0, print)
    allowed = {"steps", "iterations", "eval_every", "eval_targets", "samples_per_iteration", "max_seconds", "seed", *CEMSSL_FIELDS}
    for method, (model_method, kind) in METHODS.items():
        recipe = recipe_for(ctx, planar_arm(4), method, "position", 7.0, seed=3)
        (phase,) = recipe.phases
        assert phase.kind == kind and recipe.model.method == model_method
        assert phase.config.max_seconds == 7.0 and phase.config.seed == 3
        default = PHASE_KINDS[kind].config()
        changed = {f.name for f in dataclasses.fields(default) if getattr(default, f.name) != getattr(phase.config, f.name)}
        assert changed <= allowed, (method, changed - allowed)
