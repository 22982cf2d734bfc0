"""Run any mix of metrics in one go: one pass over generated images and one over real images
(per-image statistics cached on disk) feed every distribution metric; generator metrics render
on their own transformed grids.

Real data is prepared at the evaluated canvas size: image folders are read and resized from
the source files straight to that size; the biased digits are drawn on their training canvas
and resized (bicubic, antialiased). Generated images are quantised to 8 bits like real ones.
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from posgen.data import DataConfig, open_dataset
from posgen.download import cache_root
from posgen.grid import Grid
from posgen.errors import MetricError
from posgen.files import atomic_write
from posgen.metrics import METRICS
from posgen.metrics.features import FEATURE_EXTRACTORS
from posgen.metrics.spectrum import power_spectra
from posgen.metrics.swd import swd_descriptors
from posgen.sampling import SampleFn

STATS_VERSION = 1


@dataclass
class EvalOptions:
    """Everything a metric may need besides the images."""

    grid: Grid
    num_samples: int = 10000
    batch_size: int = 64
    seed: int = 0
    feature_extractor: str = "inception"
    extractor_weights: str | None = None
    device: str = "cpu"
    region: tuple[int, int, int, int] | None = None  # content patch for shift consistency (output pixels)
    eq_samples: int = 256
    shift_samples: int = 64
    max_shift: float | None = None
    shift_step: float = 0.5
    plot_prefix: Path | None = None  # plots go to f"{prefix}.{name}.png"
    cache_dir: Path | None = field(default_factory=lambda: cache_root() / "stats")
    progress: bool = True
    seed_classes: Callable[[list[int]], torch.Tensor] | None = None  # a class-conditional G: the class each seed draws

    def plot_path(self, name: str) -> Path | None:
        return None if self.plot_prefix is None else Path(f"{self.plot_prefix}.{name}.png")

    def equivariance_args(self) -> dict:
        return {"grid": self.grid, "num_samples": self.eq_samples, "batch_size": min(8, self.batch_size),
                "seed": self.seed, "progress": self.progress}

    def generated_coverage_args(self) -> dict:
        return {"region": self.region, "device": self.device, "seed_classes": self.seed_classes}

    def coverage_args(self) -> dict:
        return {"grid": self.grid, "num_samples": self.num_samples, "batch_size": self.batch_size, "seed": self.seed,
                "progress": self.progress, **self.generated_coverage_args()}

    def shift_consistency_args(self) -> dict:
        if self.region is None:
            raise MetricError("shift-consistency needs the content region of the data (--region TOP,LEFT,H,W)")
        top, left, h, w = self.region
        if top < 0 or left < 0 or top + h > self.grid.height or left + w > self.grid.width:
            raise MetricError(f"shift-consistency region {self.region} (top, left, height, width) is not inside "
                              f"the {self.grid.height}x{self.grid.width} canvas")
        return {"grid": self.grid, "region": self.region, "num_samples": self.shift_samples,
                "max_shift": self.max_shift or float(self.region[2]), "step": self.shift_step,
                "batch_size": min(32, self.batch_size), "seed": self.seed,
                "plot": self.plot_path("shift-consistency"), "progress": self.progress}


# ---- images -----------------------------------------------------------------------------------
def quantize(images: torch.Tensor) -> torch.Tensor:
    """Round [-1, 1] images to the 256 levels of an 8-bit file (as real images are)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def generated_batches(sample_fn: SampleFn, grid: Grid, num: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    for b0 in range(0, num, batch_size):
        yield quantize(sample_fn(min(batch_size, num - b0), seed + b0, grid))


def real_dataset(data: DataConfig, training_size: tuple[int, int], size: tuple[int, int]):
    """The real images at `size` (uint8 [3, H, W] items)."""
    h, w = size
    th, tw = training_size
    if abs(h / w - th / tw) > 1e-6:
        raise MetricError(f"distribution metrics at {h}x{w} need real images of that aspect ratio; the data is "
                          f"{th}x{tw} (use --size with the data's aspect, or only eqt/eqr/shift-consistency)")
    if data.source != "digits":
        return open_dataset(data, size)
    dataset = open_dataset(data, training_size)
    if size == tuple(training_size):
        return dataset
    return _Resized(dataset, size)


class _Resized(torch.utils.data.Dataset):
    def __init__(self, dataset, size: tuple[int, int]) -> None:
        self.dataset, self.size = dataset, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.dataset[i][None].float()
        y = F.interpolate(x, size=self.size, mode="bicubic", align_corners=False, antialias=True)
        return y[0].round().clamp(0, 255).to(torch.uint8)


def real_batches(dataset, indices: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
    for b0 in range(0, len(indices), batch_size):
        batch = torch.stack([dataset[int(i)] for i in indices[b0:b0 + batch_size]])
        yield batch.float() / 127.5 - 1


def real_indices(n_data: int, num: int) -> np.ndarray:
    """All images when there are at most `num`, else a fixed seeded subset of `num`."""
    if n_data <= num:
        return np.arange(n_data)
    return np.sort(np.random.default_rng(0).choice(n_data, num, replace=False))


# ---- statistics -----------------------------------------------------------------------------
class StatisticPass:
    """Computes the requested per-image statistics batch by batch and concatenates them."""

    def __init__(self, statistics: set[str], extractor, seed: int) -> None:
        self.statistics, self.extractor, self.seed = statistics, extractor, seed

    def run(self, batches: Iterator[torch.Tensor], total: int, desc: str, progress: bool,
            counters: tuple = (), first_seed: int = 0) -> dict[str, object]:
        """`counters` (of generated images) count each batch too, with the seed of its first image."""
        parts: dict[str, list] = {s: [] for s in self.statistics}
        seed = first_seed
        with tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False) as bar:
            for k, images in enumerate(batches):
                for counter in counters:
                    counter.add(images, seed)
                seed += len(images)
                if "features" in parts:
                    device = next(self.extractor.parameters()).device
                    with torch.no_grad():
                        parts["features"].append(self.extractor(images.to(device)).float().cpu().numpy())
                if "descriptors" in parts:
                    parts["descriptors"].append(swd_descriptors(images, seed=self.seed * 1_000_003 + k))
                if "spectra" in parts:
                    parts["spectra"].append(power_spectra(images))
                bar.update(len(images))
        out: dict[str, object] = {}
        for name, chunks in parts.items():
            if name == "descriptors":
                out[name] = [np.concatenate(level) for level in zip(*chunks)]
            else:
                out[name] = np.concatenate(chunks)
        return out


def _fingerprint(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, t in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _source_key(data: DataConfig) -> dict:
    if data.source == "digits":
        return {"source": "digits", "digits": asdict(data.digits)}
    if data.source.startswith("sample:"):  # bundled with scikit-learn: fixed content
        return {"source": data.source, "patch_height": data.patch_height}
    path = Path(data.source).expanduser().resolve()
    stat = path.stat()
    return {"source": str(path), "mtime_ns": stat.st_mtime_ns, "bytes": stat.st_size, "resize": data.resize,
            "patch_height": data.patch_height}


def _cache_file(cache_dir: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=list).encode()).hexdigest()[:20]
    return cache_dir / f"real-{digest}.npz"


def _save_stats(path: Path, stats: dict, key: dict) -> None:
    arrays = {}
    for name, value in stats.items():
        if name == "descriptors":
            arrays.update({f"descriptors_{i}": level for i, level in enumerate(value)})
        else:
            arrays[name] = value
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array(json.dumps(key, sort_keys=True, default=list)), **arrays)

    try:
        atomic_write(path, write)  # concurrent evaluations never see a partial file
    except OSError as e:
        warnings.warn(f"could not cache real-data statistics in {path.parent}: {e}", stacklevel=2)


def _load_stats(path: Path, key: dict) -> dict | None:
    try:
        with np.load(path) as z:
            if str(z["key"]) != json.dumps(key, sort_keys=True, default=list):
                return None
            stats: dict = {}
            levels = sorted((k for k in z.files if k.startswith("descriptors_")), key=lambda k: int(k.split("_")[1]))
            if levels:
                stats["descriptors"] = [z[k] for k in levels]
            stats.update({k: z[k] for k in z.files if k in ("features", "spectra")})
            return stats
    except (OSError, ValueError, KeyError):
        return None


def real_statistics(statistics: set[str], data: DataConfig, training_size: tuple[int, int], opts: EvalOptions,
                    extractor, *, indices: np.ndarray | None = None, dataset=None) -> dict:
    """Statistics of the real images at the evaluated size, from the disk cache when present."""
    dataset = dataset if dataset is not None else real_dataset(data, training_size, opts.grid.size)
    if indices is None:
        indices = real_indices(len(dataset), opts.num_samples)
    stats: dict = {}
    missing = set()
    keys = {}
    for s in statistics:
        keys[s] = {"version": STATS_VERSION, "data": _source_key(data), "size": list(opts.grid.size),
                   "count": len(indices), "first": int(indices[0]), "last": int(indices[-1]),
                   "indices": hashlib.sha256(indices.tobytes()).hexdigest()[:16], "statistic": s, "seed": opts.seed}
        if s == "features":
            keys[s]["extractor"] = [extractor.name, _fingerprint(extractor)]
        cached = _load_stats(_cache_file(opts.cache_dir, keys[s]), keys[s]) if opts.cache_dir else None
        if cached and s in cached:
            stats[s] = cached[s]
        else:
            missing.add(s)
    if missing:
        fresh = StatisticPass(missing, extractor, opts.seed).run(
            real_batches(dataset, indices, opts.batch_size), len(indices), "real images", opts.progress)
        for s in missing:
            stats[s] = fresh[s]
            if opts.cache_dir:
                _save_stats(_cache_file(opts.cache_dir, keys[s]), {s: fresh[s]}, keys[s])
    return stats


# ---- the runner -------------------------------------------------------------------------------
def check_metric_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise MetricError(f"unknown metric {', '.join(unknown) or '(none)'}; available: {', '.join(METRICS)}")


def load_extractor(statistics: set[str], opts: EvalOptions):
    if "features" not in statistics:
        return None
    if opts.feature_extractor not in FEATURE_EXTRACTORS:
        raise MetricError(f"unknown feature extractor {opts.feature_extractor!r}; "
                          f"available: {', '.join(FEATURE_EXTRACTORS)}")
    return FEATURE_EXTRACTORS[opts.feature_extractor](device=opts.device, weights=opts.extractor_weights)


def evaluate(sample_fn: SampleFn, names: list[str], opts: EvalOptions, *, data: DataConfig | None = None,
             training_size: tuple[int, int] | None = None, extractor=None) -> dict[str, dict]:
    """Run metrics `names` for `sample_fn` on `opts.grid`; returns {name: result dict}.

    Distribution metrics need `data` (and the `training_size` it is stored at). `extractor`: a
    feature network already loaded by `load_extractor` (a caller scoring many generators)."""
    check_metric_names(names)
    statistics = {METRICS[n].statistic for n in names} - {None}
    results: dict[str, dict] = {}
    if statistics:
        if data is None or training_size is None:
            raise MetricError(f"{', '.join(n for n in names if METRICS[n].statistic)} need real data (--data)")
        extractor = extractor or load_extractor(statistics, opts)
        real = real_statistics(statistics, data, training_size, opts, extractor)
        counters = {n: METRICS[n].counter(opts) for n in names if METRICS[n].counter}  # they count these images too
        fake = StatisticPass(statistics, extractor, opts.seed).run(
            generated_batches(sample_fn, opts.grid, opts.num_samples, opts.batch_size, opts.seed),
            opts.num_samples, "generated images", opts.progress, tuple(counters.values()), opts.seed)
        results.update({n: c.result() for n, c in counters.items()})
        for n in names:
            if METRICS[n].statistic:
                results[n] = METRICS[n].compute(fake[METRICS[n].statistic], real[METRICS[n].statistic], opts)
        if extractor is not None:
            for n in names:
                if METRICS[n].statistic == "features":
                    results[n]["feature_extractor"] = extractor.name
    for n in names:
        if METRICS[n].statistic is None and n not in results:
            results[n] = METRICS[n].compute(sample_fn, opts)
    return {n: results[n] for n in names}


def real_vs_real(names: list[str], opts: EvalOptions, data: DataConfig, training_size: tuple[int, int]) -> dict:
    """The floor of the distribution metrics: the first half of the real images (in data order, so
    near-duplicates such as the jittered copies of one digit stay on one side) against the second."""
    check_metric_names(names)
    bad = [n for n in names if METRICS[n].statistic is None]
    if bad:
        raise MetricError(f"real-vs-real compares data with data; {', '.join(bad)} need a generator")
    statistics = {METRICS[n].statistic for n in names}
    extractor = load_extractor(statistics, opts)
    dataset = real_dataset(data, training_size, opts.grid.size)
    half = min(len(dataset) // 2, opts.num_samples)
    if half < 4:
        raise MetricError(f"real-vs-real needs at least 8 real images, the data has {len(dataset)}")
    a = real_statistics(statistics, data, training_size, opts, extractor, indices=np.arange(half), dataset=dataset)
    b = real_statistics(statistics, data, training_size, opts, extractor,
                        indices=np.arange(len(dataset) - half, len(dataset)), dataset=dataset)
    return {n: METRICS[n].compute(a[METRICS[n].statistic], b[METRICS[n].statistic], opts) for n in names}


def to_json(record: dict) -> str:
    """JSON with inf/nan written as strings (a perfectly equivariant generator scores inf dB)."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(record))
