"""What produced a checkpoint's weights: the method label of its surviving training phases.

A checkpoint's training record lists its phases, each with ``survived``: whether the weights the
checkpoint holds carry that phase's changes (a CEMSSL phase whose keep-best restored the weights
it started from did not survive).  ``trained_by`` joins the labels of the surviving phases with
``+``, after the parent's for a fine-tune: ``"fkloss+residual"``, ``"regression"``,
``"cgan+cemssl_fk"``.  Records written before recipes existed (a ``phase`` name and the parent's
whole record nested under ``finetuned_from``) are read by :func:`legacy_trained_by`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

__all__ = ["trained_by_label", "legacy_trained_by", "curves_path"]

_SUPERVISED_METHODS = ("cvae", "cgan", "cinn")


def trained_by_label(labels: Sequence[str]) -> str:
    """``labels`` joined with ``+``, a label repeated in a row counted once; ``"untrained"`` if none."""
    out: list[str] = []
    for label in labels:
        for part in label.split("+"):
            if part and (not out or out[-1] != part):
                out.append(part)
    return "+".join(out) or "untrained"


def _legacy_phase_label(phase: dict[str, Any], method: str) -> str | None:
    """The label of one phase of a pre-recipe record, or None if its weights did not survive."""
    kind, config = phase.get("phase"), phase.get("config") or {}
    if kind == "cemssl":
        discarded = config.get("keep_best", True) and phase.get("best_iteration") == 0 and phase.get("initial_eval_error_mean") is not None
        if not phase.get("iterations") or discarded:
            return None
        return "cemssl_fk" if config.get("fk_loss_weight", 0) > 0 else "cemssl"
    if not phase.get("steps"):
        return None
    if kind == "pretrain":
        return method if method in _SUPERVISED_METHODS else "regression"
    return {"warmup": "fkloss", "unsupervised": "fkloss", "residual": "residual"}.get(str(kind))


def legacy_trained_by(training: dict[str, Any], method: str) -> str:
    """``trained_by`` of a pre-recipe training record (``method``: the checkpoint's model method)."""
    labels = []
    parent = training.get("finetuned_from")
    if isinstance(parent, dict) and isinstance(parent.get("training"), dict):
        labels.append(legacy_trained_by(parent["training"], str(parent.get("method", method))))
    for phase in training.get("phases", []):
        label = _legacy_phase_label(phase, method) if isinstance(phase, dict) else None
        if label:
            labels.append(label)
    return trained_by_label(labels)


def curves_path(path: str | Path) -> Path:
    """The learning-curves sidecar of checkpoint ``path``: ``NAME.curves.json`` (not needed to load)."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".curves.json")
