"""The papers' published figures that the report prints next to its own (never mixed into them).

- CEMSSL (Qu, Liu, Du, Luo): "CEMSSL: Conditional Embodied Self-Supervised Learning is All You
  Need for High-precision Multisolution Inverse Kinematics of Robot Arms";
- EMSSL (Qu, Liu, Wu, Luo): "Embodied Self-Supervised Learning (EMSSL) with Sampling and Training
  Coordination for Robot Arm Inverse Kinematics Model Learning";
- FK loss (Stephan, Dontsov, Müller, Gross): "On Learning of Inverse Kinematics for Highly
  Redundant Robots with Neural Networks";
- cVAE vs INN (Schwaiger, Barthel Brunner): "Neural Networks for Inverse Kinematics Problems in Robotics".
"""

from __future__ import annotations

__all__ = ["CEMSSL_TABLE_II_MM", "CEMSSL_FINETUNED_MM", "STEPHAN_TABLE_II_MM", "EMSSL_TABLE_II_MM", "EMSSL_TABLE_III_S", "stephan_uniform_range"]

#: CEMSSL paper, Table II: mean position error (mm) of the UR3 position-only models
CEMSSL_TABLE_II_MM = {"cvae": 11.45, "cgan": 4.78, "cinn": 1.73, "cemssl": 0.02}
#: CEMSSL paper, Fig. 4: mean position error (mm) of every baseline after CEMSSL fine-tuning
CEMSSL_FINETUNED_MM = 0.02
#: Stephan et al., Table II: unsupervised position-only training, mean L2 error (mm) per DoF,
#: along their test trajectory and on a uniformly distributed test set
STEPHAN_TABLE_II_MM = {7: {"trajectory": 24.8, "uniform": 29.3}, 10: {"trajectory": 13.9, "uniform": 30.4}, 20: {"trajectory": 18.8, "uniform": 33.7}}
#: EMSSL paper, Table II: UR3 position-only mean error (mm; the paper gives cm), (method, joint range in degrees)
EMSSL_TABLE_II_MM = {
    ("regression", 90): 23.4, ("regression", 180): 316.9,
    ("distal", 90): 3.9, ("distal", 180): 23.7,
    ("cgan", 90): 4.8, ("cgan", 180): 25.7,
    ("emssl", 90): 2.8, ("emssl", 180): 17.8,
}
#: EMSSL paper, Table III: seconds of data sampling per strategy (batch size 512, 6 threads)
EMSSL_TABLE_III_S = {"none": 61.40, "batch": 5.10, "vectorized": 57.84, "both": 2.02}


def stephan_uniform_range() -> str:
    """'29-34 mm (7-20 DoF)': the range of Stephan et al.'s uniform-test-set column."""
    v = [r["uniform"] for r in STEPHAN_TABLE_II_MM.values()]
    return f"{min(v):.0f}-{max(v):.0f} mm ({min(STEPHAN_TABLE_II_MM)}-{max(STEPHAN_TABLE_II_MM)} DoF)"
