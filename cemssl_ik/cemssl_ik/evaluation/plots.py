"""Matplotlib figures (PNG, headless Agg backend): arm overlays of several solutions of one target."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..kinematics.chain import KinematicChain

__all__ = ["plot_arm_overlays"]


def plot_arm_overlays(
    chain: KinematicChain,
    solutions: torch.Tensor,
    target: Sequence[float],
    path: str | Path,
    labels: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    """Draw each joint solution (K, dof) as a polyline through the chain's link origins, in 3D.

    One colour per solution (labels e.g. the branch); the target is a black star.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, frames = chain.link_frames(torch.as_tensor(solutions, dtype=torch.float64))
    pts = frames[..., :3, 3].numpy()  # (K, L, 3)
    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    cmap = plt.get_cmap("tab10")
    for k in range(pts.shape[0]):
        label = labels[k] if labels is not None else f"solution {k}"
        ax.plot(pts[k, :, 0], pts[k, :, 1], pts[k, :, 2], "-o", color=cmap(k % 10), lw=2, ms=3, label=label, alpha=0.85)
    ax.scatter([target[0]], [target[1]], [target[2]], marker="*", s=250, color="k", label="target", zorder=10)
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_zlabel("z [m]")
    reach = max(float(abs(pts).max()), 0.1)
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-reach, reach)
    ax.set_zlim(-reach, reach)
    ax.set_box_aspect((1, 1, 1))  # metric: equal scale on all axes
    ax.set_title(title or f"{pts.shape[0]} solutions ({chain.base_link} -> {chain.tip_link})")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
