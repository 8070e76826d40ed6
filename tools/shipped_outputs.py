"""Record reference outputs of the shipped models (test/data/shipped_model_outputs.json).

The test ``test_shipped_models.py`` reloads every shipped checkpoint and checks it reproduces these
outputs for fixed targets and latents: stored weights keep working across code and torch changes.
Run again (python tools/shipped_outputs.py) only when a shipped model is retrained on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from cemssl_ik.kinematics import load_robot

from cemssl_ik.models import load_checkpoint

ROOT = Path(__file__).resolve().parents[1] / "cemssl_ik"


def reference_inputs(chain, latent_dim: int):
    q = chain.sample_configurations(4, torch.Generator().manual_seed(2024))
    fk = chain.forward(q)
    z = torch.randn(4, 3, latent_dim, generator=torch.Generator().manual_seed(7), dtype=torch.float64).float()
    return fk.position, fk.rotation, z


def main() -> None:
    chain = load_robot("ur3")
    out = {}
    for meta in sorted((ROOT / "models").glob("*.json")):
        model, info = load_checkpoint(meta.with_suffix(""), chain)
        pos, rot, z = reference_inputs(chain, model.latent_dim)
        q = model.sample(pos, rot if model.config.target == "pose" else None, 3, z=z).q
        out[meta.stem] = {"weights_sha256": info.metadata["weights_sha256"], "q": q.tolist()}
    path = ROOT / "test" / "data" / "shipped_model_outputs.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({len(out)} models)")


if __name__ == "__main__":
    main()
