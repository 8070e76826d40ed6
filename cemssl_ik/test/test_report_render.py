"""RESULTS.md from typed section results: the template renders every section, fills every
placeholder, leaves out optional parts without their numbers, quotes the papers' figures from
one place, and docs/RESULTS.md is what it renders from docs/results/report.json."""

from __future__ import annotations

import json
import re

import pytest
from cemssl_ik.evaluation.report import SECTIONS, render_markdown
from cemssl_ik.evaluation.report.artificial import ArtificialResult, ArtificialRow
from cemssl_ik.evaluation.report.emssl import EMSSLResult, TableIIIRow, TableIIRow
from cemssl_ik.evaluation.report.finetune_terms import ARMS, FinetuneTermsResult, TermRow
from cemssl_ik.evaluation.report.hard_targets import HardTargetsResult
from cemssl_ik.evaluation.report.planar import PlanarResult, PlanarRow
from cemssl_ik.evaluation.report.render import load_template
from cemssl_ik.evaluation.report.speed import SpeedResult
from cemssl_ik.evaluation.report.ur3_pose import OURS, UR3PoseResult
from cemssl_ik.evaluation.report.ur3_position import FINETUNED, RESIDUAL, UR3_POSITION_MODELS, ModelRow, UR3PositionResult
from conftest import REPO_ROOT


def _err(mean: float) -> dict[str, float]:
    return {"mean": mean, "median": mean * 0.9, "p95": mean * 2, "max": mean * 5}


def _solver(coverage: float, rate: float) -> dict:
    return {"targets": 10, "returned_per_target": 6.0, "precise_per_target": 6.0, "precise_fraction_of_returned": 1.0, "success_precise": 1.0,
            "analytic_coverage": coverage, "precise_solutions_per_second": rate, "ms_per_target": 0.1, "latency_p50_ms": 0.4}


def _evaluation(mean: float) -> dict:
    return {"position_error_mm": _err(mean), "success": {"<=1mm": 0.5}, "class_coverage": 0.5, "mmd": 0.1}


def _results() -> dict:
    models = {n: ModelRow(_err(10.0 / (i + 1)), {"<=1mm": 0.5, "<=0.1mm": 0.25}, 1.0, 0.5, 0.1 * i, trained_by=f"phase{i}") for i, n in enumerate(UR3_POSITION_MODELS)}
    figs = {k: f"results/{k}.png" for k in ("cdf", "finetune", "overlays", "cross_section")}
    t2 = [TableIIRow(deg, m, _err(1.0 + i), 1.0, 3.0) for deg in (90, 180) for i, m in enumerate(("emssl", "regression", "distal", "cgan"))]
    t3 = [TableIIIRow(s, 128, 0.1, 0.1, t, None) for s, t in (("none", 2.0), ("batch", 1.0), ("vectorized", 1.5), ("both", 0.25))]
    return {
        "ur3_position": UR3PositionResult(models, 20, 4, 8, 0.001, 16, figs, _err(1.0)),
        "finetune_terms": FinetuneTermsResult("ur3_cgan", "ur3_cgan_cemssl_fk", 3.0, _evaluation(17.0), [TermRow(arm, 3.0, [[1.0, 0.01]], _evaluation(1.0 + i)) for i, arm in enumerate(ARMS)],
                                              {"curves": "results/finetune_terms_curves.png"}),
        "emssl": EMSSLResult(t2, t3, 3.0, {"curves": "results/emssl_learning_curves.png"}),
        "planar": PlanarResult([PlanarRow(4, m, 0.1 * (i + 1), _err(100.0), 50.0, 3.0, 50) for i, m in enumerate(("cvae", "cinn", "cemssl"))], 0.02, 3, 3.0),
        "artificial": ArtificialResult([ArtificialRow(4, t, m, _err(20.0), 2.0, _err(5.0) if t == "pose" else None) for t in ("position", "pose") for m in ("regression", "unsupervised", "cemssl")], 2.0),
        "ur3_pose": UR3PoseResult(10, {"position_error_mm": _err(25.0), "orientation_error_deg": _err(8.0), "in_limits_fraction": 1.0, "class_coverage": 0.25, "mmd": 0.006,
                                       "diversity": {"targets": 4, "samples_per_target": 8, "near_m": 0.01, "near_rad": 0.1}},
                                  {OURS: _solver(0.98, 5e4), "analytic": _solver(1.0, 3e5), "pytorch_kinematics": _solver(0.97, 1e3), "ikpy": {"absent": "No module named 'ikpy'"}},
                                  {"overlays": "results/ur3_pose_overlays.png"}),
        "hard_targets": HardTargetsResult(2, 32, {}),
        "speed": SpeedResult([{"solver": "cemssl_ik pose (K=8, refined)", "batch": 1, "solutions_per_second": 5e3, "ratio_vs_analytic": 0.01},
                              {"solver": "analytic", "batch": 1, "solutions_per_second": 3e5}]),
    }


def _report(results: dict) -> dict:
    machine = {"cpu": "test cpu", "logical_cpus": 2, "torch_threads": 1, "python": "3.x", "platform": "test", "git_commit": "abc1234", "versions": {"torch": "2"}}
    return {"scale": {"name": "quick"}, "command": "cemssl-ik bench report --quick", "machine": machine, "started": "then",
            "sections": {k: v.to_dict() for k, v in results.items()}, "section_seconds": {k: 1.0 for k in results}, "total_seconds": 60.0}


def test_results_round_trip_through_json():
    for name, result in _results().items():
        back = SECTIONS[name].result.from_dict(json.loads(json.dumps(result.to_dict())))
        assert back == result, name


def test_every_section_renders_with_every_placeholder_filled():
    md = render_markdown(_report(_results()))
    for heading in ("## UR3 position-only", "## Fine-tuning ur3_cgan", "## EMSSL", "## Planar arms", "## Artificial chains", "## UR3 full pose", "## UR3 near-singular targets", "## Speed"):
        assert md.count(heading) == 1
    assert "$" not in md and "FAILED" not in md
    for i, name in enumerate(UR3_POSITION_MODELS):
        assert f"| {name} | phase{i} |" in md  # what produced each model's weights, next to its name
    for base, tuned in FINETUNED.items():
        assert f"{base} 10.0 -> {tuned}" in md or f"-> {tuned}" in md
    for base, staged in RESIDUAL.items():  # the residual-stage sentence, after the section's figures
        assert re.search(rf"followed by a residual stage trained by the FK loss .*: {base} [\d.]+ -> {staged} [\d.]+ mm", md)
    assert "(results/ur3_pose_overlays.png)" in md and "pytorch-kinematics restarts cover 97.0 %" in md
    assert "(8 samples on each of 4 poses): class coverage 0.25 (classes with a sample within 10 mm and 5.7°), MMD 0.006" in md
    # the generated text states measurements, never a verdict on an issue's target
    assert not re.search(r"\bissue|\bmeets\b|\bbelow the\b", md, re.IGNORECASE)


def test_papers_are_quoted_from_their_tables():
    md = render_markdown(_report(_results()))
    # EMSSL paper, Table III: 61.40 s with no acceleration, 2.02 s with both: 30.4x
    assert "61.40 s with no acceleration, 2.02 s" in md and "(30.4x)" in md and "| both | 128 |" in md
    assert re.search(r"\| both \| 128 \|.*\| 2\.02 \| 30\.40 \|", md)
    # Stephan et al., Table II: the uniform test set's column, 29.3-33.7 mm for 7-20 DoF
    assert "29-34 mm (7-20 DoF) on a uniformly distributed test set" in md and "25-34" not in md
    # Schwaiger and Brunner's re-simulation finding is not what the planar table measures
    assert "does not test their re-simulation finding" in md


def test_optional_parts_are_left_out_without_their_numbers_and_failures_are_shown():
    results = _results()
    del results["ur3_pose"].solvers["pytorch_kinematics"]
    del results["ur3_pose"].raw_model["diversity"]  # a run from before the pose model's diversity was measured
    results["ur3_pose"].figures.clear()
    report = _report(results)
    report["sections"]["planar"] = {"error": "RuntimeError: boom", "traceback": "..."}
    md = render_markdown(report)
    assert "restarts cover" not in md and "pose overlays" not in md and "each pose's analytic solutions" not in md
    assert "## planar: FAILED" in md and "`RuntimeError: boom`" in md and "## Planar arms" not in md
    assert "$" not in md


def test_every_template_block_belongs_to_a_section_or_the_frame():
    frame = {"header", "updates", "machine", "failed"}
    for name in load_template():
        assert name in frame or name.split(".")[0] in SECTIONS, name


def test_docs_results_is_the_template_rendered_from_its_report_json():
    """docs/RESULTS.md is generated: `cemssl-ik bench report --render-only --out docs` rewrites it."""
    report = json.loads((REPO_ROOT / "docs" / "results" / "report.json").read_text())
    committed = (REPO_ROOT / "docs" / "RESULTS.md").read_text()
    stamp = re.search(r"on (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+) by `cemssl-ik bench report --render-only`", committed)
    if stamp:
        report["rerendered"] = stamp.group(1)
    assert render_markdown(report) == committed


@pytest.mark.parametrize("name", list(SECTIONS))
def test_each_section_renders_from_the_published_run(name):
    report = json.loads((REPO_ROOT / "docs" / "results" / "report.json").read_text())
    if name not in report["sections"]:
        pytest.skip(f"the published run has no {name} section")
    values = SECTIONS[name].values(SECTIONS[name].result.from_dict(report["sections"][name]))
    text = load_template()[name].substitute(values)  # raises KeyError on a missing placeholder
    assert "$" not in text and "\n| " in text  # its table is there
