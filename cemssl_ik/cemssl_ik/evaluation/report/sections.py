"""The report's sections, in the order they run and appear in RESULTS.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import adaptation, artificial, emssl, finetune_terms, hard_targets, planar, speed, ur3_pose, ur3_position
from .base import Context, SectionResult

__all__ = ["SECTIONS", "Section"]


@dataclass(frozen=True)
class Section:
    """``run`` measures and returns a ``result`` instance; ``values`` turns one into the
    placeholders of the section's template block(s)."""

    run: Callable[[Context], SectionResult]
    result: type[SectionResult]
    values: Callable[..., dict[str, str]]


SECTIONS: dict[str, Section] = {
    "ur3_position": Section(ur3_position.run, ur3_position.UR3PositionResult, ur3_position.template_values),
    "finetune_terms": Section(finetune_terms.run, finetune_terms.FinetuneTermsResult, finetune_terms.template_values),
    "emssl": Section(emssl.run, emssl.EMSSLResult, emssl.template_values),
    "planar": Section(planar.run, planar.PlanarResult, planar.template_values),
    "artificial": Section(artificial.run, artificial.ArtificialResult, artificial.template_values),
    "ur3_pose": Section(ur3_pose.run, ur3_pose.UR3PoseResult, ur3_pose.template_values),
    "hard_targets": Section(hard_targets.run, hard_targets.HardTargetsResult, hard_targets.template_values),
    "speed": Section(speed.run, speed.SpeedResult, speed.template_values),
    "adaptation": Section(adaptation.run, adaptation.AdaptationResult, adaptation.template_values),
}
