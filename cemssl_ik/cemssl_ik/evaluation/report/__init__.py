"""``cemssl-ik bench report``: every headline figure of the project from one run.

One module per section, each with a ``run(ctx)`` returning its result dataclass and a
``template_values(result)`` giving the placeholders of its prose in ``RESULTS.template.md``:

- :mod:`.ur3_position`: the shipped UR3 position models: precision, class coverage and MMD to
  the analytic posterior (CEMSSL paper, Table II / Fig. 4);
- :mod:`.finetune_terms`: the shipped CGAN fine-tuned by CEMSSL alone, the FK loss alone and
  both, at equal wall time (learning curves, precision and diversity);
- :mod:`.emssl`: EMSSL paper Table II and III analogs (UR3 in +-90 / +-180 deg joint spaces;
  data-sampling strategies);
- :mod:`.planar`: Schwaiger and Brunner's planar arms, cVAE vs INN vs CEMSSL;
- :mod:`.artificial`: Stephan et al.'s artificial chains;
- :mod:`.ur3_pose`: the shipped pose model refined by the solver vs peer IK solvers;
- :mod:`.hard_targets`: near-singular UR3 targets;
- :mod:`.speed`: solutions per second at several batch sizes.

:mod:`.runner` runs them and writes ``<out>/results/report.json`` (after every section,
atomically), the figures ``<out>/results/*.png`` and ``<out>/RESULTS.md`` (:mod:`.render`).
"""

from .render import render_markdown
from .runner import machine_info, rerender, run_report, summary_rows
from .scales import SCALES, ReportScale
from .sections import SECTIONS, Section

__all__ = ["SCALES", "SECTIONS", "ReportScale", "Section", "machine_info", "render_markdown", "rerender", "run_report", "summary_rows"]
