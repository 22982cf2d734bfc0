"""The best snapshot of a run by FID (`train.fid_samples`).

GAN training does not improve monotonically: on the small digits data the FID of later snapshots
swings by 10-20 (docs/recipe.md), so the last checkpoint is often not the best one. With
`train.fid_samples = N` the driver scores the EMA generator of every snapshot by FID on N samples
(the data's feature network: digits features for the digits, Inception otherwise), appends
`{"step", "kimg", "fid"}` to `fid.jsonl`, and keeps the best snapshot's generator as
`best.safetensors` (an exported generator, float32: `posgen evaluate --checkpoint RUN/best.safetensors`).

The latents come from seeds `SELECTION_SEED ..`, disjoint from the seeds `posgen evaluate` draws by
default (0 ..), so a later evaluation of the chosen snapshot scores other samples than the ones it
was chosen on.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from posgen import checkpoint
from posgen.config import RunConfig
from posgen.files import atomic_write

FID_LOG_NAME = "fid.jsonl"
BEST_NAME = "best.safetensors"
SELECTION_SEED = 1_000_000


class BestSnapshot:
    """Scores snapshots of the run in `out` and keeps the best; resumes from its `fid.jsonl`."""

    def __init__(self, cfg: RunConfig, out: Path, kept_lines: list[str]) -> None:
        from posgen.metrics.evaluate import EvalOptions, load_extractor

        self.cfg, self.out = cfg, out
        extractor = "digits" if cfg.data.source == "digits" else "inception"
        self.opts = EvalOptions(grid=None, num_samples=cfg.train.fid_samples, seed=SELECTION_SEED,
                                feature_extractor=extractor, progress=False)
        self.extractor = load_extractor({"features"}, self.opts)  # a missing network fails before training
        self.log = out / FID_LOG_NAME
        atomic_write(self.log, lambda tmp: Path(tmp).write_text("".join(f"{line}\n" for line in kept_lines)))
        self.best = min((json.loads(line)["fid"] for line in kept_lines), default=math.inf)

    def score(self, ckpt_path: Path, step: int, kimg: float) -> float:
        """FID of the snapshot just saved at `ckpt_path`; exports it as best.safetensors if it is the best."""
        from posgen.metrics.evaluate import evaluate
        from posgen.sampling import make_sample_fn

        G, _, _ = checkpoint.load_generator(ckpt_path)
        grid = G.default_grid()
        result = evaluate(make_sample_fn(G), ["fid"], dataclasses.replace(self.opts, grid=grid), data=self.cfg.data,
                          training_size=grid.size, extractor=self.extractor)
        value = float(result["fid"]["fid"])
        with open(self.log, "a") as f:
            f.write(json.dumps({"step": step, "kimg": round(kimg, 4), "fid": round(value, 4)}) + "\n")
        if value < self.best:
            self.best = value
            checkpoint.export_generator(ckpt_path, self.out / BEST_NAME, half=False)
        return value
