"""RESULTS.md from a report's results: the prose lives in ``RESULTS.template.md`` (next to this
module), one string.Template block per part; this module only fills in the placeholders."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from string import Template

from .sections import SECTIONS

__all__ = ["TEMPLATE_PATH", "load_template", "render_markdown"]

TEMPLATE_PATH = Path(__file__).with_name("RESULTS.template.md")
_BLOCK = re.compile(r"^<!-- block: ([\w.]+) -->$", re.MULTILINE)


@functools.lru_cache(maxsize=4)
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Template]:
    """The template's blocks by name (text before the first block is its documentation)."""
    parts = _BLOCK.split(path.read_text(encoding="utf-8"))
    return {name: Template(body.strip()) for name, body in zip(parts[1::2], parts[2::2])}


def _identifiers(t: Template) -> set[str]:
    return {m.group("named") or m.group("braced") for m in t.pattern.finditer(t.template) if m.group("named") or m.group("braced")}


def _fill(blocks: dict[str, Template], name: str, values: dict[str, str]) -> list[str]:
    """The block ``name`` filled (every placeholder required), then each optional ``name.part``
    block whose placeholders are all present and non-empty."""
    out = [blocks[name].substitute(values)]
    for part, t in blocks.items():
        if part.startswith(name + ".") and all(values.get(k) for k in _identifiers(t)):
            out.append(t.substitute(values))
    return out


def _header(report: dict) -> dict[str, str]:
    m = report["machine"]
    rerendered = report.get("rerendered")
    updates = []
    for u in report.get("updates", []):
        where = f", on {u['cpu']}: timings are that machine's" if u.get("cpu") and u["cpu"] != m["cpu"] else ""
        updates.append(f"Updated {u['started']}: sections {', '.join(u['sections'])} were run again by `{u['command']}` (git {u['git_commit']}{where}) and replace that run's; the other sections are unchanged.")
    return {
        "command": report["command"] or "cemssl-ik bench report",
        "scale": report["scale"]["name"],
        "started": report["started"],
        "minutes": f"{report.get('total_seconds', 0) / 60:.1f}",
        "rerendered": f" (Text re-rendered from that run's results/report.json on {rerendered} by `cemssl-ik bench report --render-only`; numbers unchanged.)" if rerendered else "",
        "updates": "\n".join(updates),
        **{k: str(m[k]) for k in ("cpu", "logical_cpus", "torch_threads", "python", "platform", "git_commit")},
        "versions": ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
        "section_times": ", ".join(f"{k} {v:.0f} s" for k, v in report["section_seconds"].items()),
    }


def render_markdown(report: dict, template: Path = TEMPLATE_PATH) -> str:
    """RESULTS.md for a report (the dict of ``results/report.json``)."""
    blocks = load_template(template)
    head = _header(report)
    out = [blocks["header"].substitute(head)]
    if head["updates"]:
        out.append(blocks["updates"].substitute(head))
    out.append(blocks["machine"].substitute(head))
    done = {k: v for k, v in report["sections"].items() if "error" not in v}
    for name, v in report["sections"].items():
        if "error" in v:
            out.append(blocks["failed"].substitute(name=name, error=v["error"]))
    for name, section in SECTIONS.items():
        if name in done:
            out += _fill(blocks, name, section.values(section.result.from_dict(done[name])))
    return "\n\n".join(out) + "\n"
