"""The `posgen` command: thin wrappers over importable functions.

Bad input (unknown preset, bad size or shift, unreadable checkpoint, ...) prints one line
on stderr and exits with code 2; a training run that has to stop exits with code 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from posgen.cli_apps import add_app_commands
from posgen.errors import (CapabilityError, CheckpointError, ConfigError, DataError, MetricError, TrainingError,
                           UsageError)
from posgen.memory import parse_bytes
from posgen.options import (add_canvas_options, add_render_options, canvas_from_args, check_device,
                            grid_for, join_signed_values, output_file, output_folder, parse_region,
                            parse_seeds, parse_shift, parse_size, positive, refusing, render_options, seed_number,
                            results_file)

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message}")


# ---- subcommands ----------------------------------------------------------------------------
def cmd_presets(args: argparse.Namespace) -> int:
    from posgen.presets import PRESETS

    width = max(map(len, PRESETS))
    for name, (summary, _) in PRESETS.items():
        print(f"{name:<{width}}  {summary}")
    return 0


def cmd_pretrained(args: argparse.Namespace) -> int:
    from posgen.pretrained import list_pretrained

    rows = list_pretrained()
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['bytes'] / 2**20:5.1f} MB  {r['summary']}")
    if not rows:
        print("no shipped models in this install", file=sys.stderr)
    return 0


def resolve_config(args: argparse.Namespace):
    from posgen.config import apply_overrides
    from posgen.presets import get_preset

    cfg = get_preset(args.preset)
    overrides = list(args.set or [])
    if args.data:
        overrides.append(f"data.source={json.dumps(args.data)}")
    if args.kimg is not None:
        overrides.append(f"train.kimg={args.kimg}")
    return apply_overrides(cfg, overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from posgen import checkpoint
    from posgen.training.distributed import main_process
    from posgen.training.loop import check_resumable, train

    if args.resume:
        if args.preset or args.set or args.data:
            raise UsageError("--resume continues a run with its stored config; drop --preset/--set/--data "
                             "(--kimg sets a new length)")
        check_resumable(args.resume)
        _, cfg, _ = checkpoint.load(args.resume)
        out = Path(args.resume)
    else:
        if not args.preset:
            raise UsageError("train needs --preset NAME (see `posgen presets`) or --resume RUN_DIR")
        cfg = resolve_config(args)
        if args.dry_run:
            print(cfg.to_json())
            return 0
        out = Path(args.out or f"runs/{cfg.name}")
        if (out / checkpoint.CHECKPOINT_NAME).exists():
            raise UsageError(f"{out} already holds a run; use --resume {out} or another --out")
        output_folder(str(out), create=True)  # training writes it at once
    check_device(args.device)
    train(cfg, out, seed=args.seed, device=args.device, resume=bool(args.resume),
          max_seconds=args.minutes * 60 if args.minutes else None, kimg=args.kimg if args.resume else None)
    if main_process():  # under torchrun: once
        print(out / checkpoint.CHECKPOINT_NAME)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from posgen.models.base import RenderOptions
    from posgen.sampling import load, render_seeds
    from posgen.tiling import TILE_MEMORY, render_png, tileable
    from posgen.viz import save_image, save_image_grid

    check_device(args.device)
    single = Path(args.out).suffix.lower() == ".png"  # one image, else a folder of them
    seeds = args.seeds or ([0] if single else parse_seeds("0-7"))
    if single and len(seeds) != 1:
        raise UsageError(f"--out {args.out} is one image: give one seed (--seeds N) or a folder")
    out = output_file(args.out, ".png") if single else output_folder(args.out)
    canvas = canvas_from_args(args)
    G, cfg, _ = load(args.checkpoint, args.device)
    grid = grid_for(G, canvas, args.checkpoint, max_pixels=None)  # bounded by the memory budget instead
    options = render_options(args)
    opts = RenderOptions(**options)
    refusing(lambda: G.check(opts, grid, args.checkpoint))
    # tiles when asked, or when one image would take more than a tile's memory and tiles are exact
    tiled = args.tile is not None or (tileable(G) and G.memory_estimate(1, grid, opts) > TILE_MEMORY)
    if tiled:
        files = [out] if single else [out / f"seed{seed:04d}.png" for seed in seeds]
        for seed, path in zip(seeds, files):
            tile = refusing(lambda: render_png(G, G.latents([seed], grid), grid, path, opts, tile=args.tile,
                                               limit=args.max_memory, model=args.checkpoint, progress=True))
        print(f"wrote {len(files)} image(s) of {grid.height}x{grid.width} in {tile[0]}x{tile[1]} tiles to {out}"
              + ("" if single else " (no grid.png of tiled renders)"))
        return 0
    images = render_seeds(G, seeds, grid, progress=True, max_memory=args.max_memory, **options)
    if single:
        save_image(images[0], out)
        print(f"wrote one image of {grid.height}x{grid.width} to {out}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for seed, img in zip(seeds, images):
        save_image(img, out / f"seed{seed:04d}.png")
    save_image_grid(images, out / "grid.png", cols=min(8, len(images)))
    print(f"wrote {len(images)} images of {grid.height}x{grid.width} and grid.png to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import dataclasses

    from posgen.metrics.evaluate import (
        EvalOptions,
        check_metric_names,
        evaluate,
        real_vs_real,
        to_json,
    )
    from posgen.sampling import load, make_sample_fn, seed_classes

    if args.out:
        results_file(args.out)
    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    check_metric_names(names)
    check_device(args.device)
    if args.checkpoint is None and not args.real_vs_real:
        raise UsageError("evaluate needs --checkpoint PATH (or --real-vs-real with --data)")
    canvas = canvas_from_args(args)
    if args.checkpoint:
        G, cfg, state = load(args.checkpoint, args.device)
        res, data = G.resolution, cfg.data
        grid = grid_for(G, canvas, args.checkpoint)
        record = {"checkpoint": str(args.checkpoint), "preset": cfg.name, "kimg": state.get("kimg")}
    else:
        from posgen.data import DataConfig
        from posgen.data.digits import BiasedDigitsConfig

        data = DataConfig(source=args.data)
        from posgen.grid import Grid

        res = BiasedDigitsConfig().canvas[0] if args.data == "digits" else (args.size or (256, 256))[0]
        grid = canvas.grid(Grid(res, res))
        record = {"checkpoint": None}
    if args.data:
        data = dataclasses.replace(data, source=args.data)
    zoom = canvas.zoom
    region = args.region or (tuple(data.digits.region) if data.source == "digits" else None)
    if region is not None:  # to output pixels of the evaluated grid, moved with --shift
        dy, dx = args.shift or (0.0, 0.0)
        top, left, h, w = (round(v * zoom) for v in region)
        region = (top + round(dy * zoom), left + round(dx * zoom), h, w)
    extractor = args.feature_extractor or ("digits" if data.source == "digits" else "inception")
    plot_prefix = Path(args.out).with_suffix("") if args.out else None
    opts = EvalOptions(grid=grid, num_samples=args.num_samples, batch_size=args.batch_size, seed=args.seed,
                       feature_extractor=extractor, extractor_weights=args.inception_weights if extractor == "inception" else None,
                       device=args.device, region=region, eq_samples=args.eq_samples, shift_samples=args.shift_samples,
                       max_shift=args.max_shift, shift_step=args.step, plot_prefix=plot_prefix)
    if args.no_cache:
        opts.cache_dir = None
    if plot_prefix is not None:
        plot_prefix.parent.mkdir(parents=True, exist_ok=True)  # checked writable by results_file
    if args.real_vs_real:
        results = real_vs_real(names, opts, data, (res, res))
    else:
        from posgen.models.base import RenderOptions

        options = render_options(args)
        refusing(lambda: G.check(RenderOptions(**options), grid, args.checkpoint))
        sample_fn = make_sample_fn(G, **options)
        opts.seed_classes = seed_classes(G, options.get("label"))
        results = evaluate(sample_fn, names, opts, data=data, training_size=(res, res))
    record.update({"data": data.source, "size": list(grid.size), "zoom": zoom, "shift": list(args.shift or (0, 0)),
                   "rotate": canvas.rotate, "noise": args.noise or "const", "truncation": args.truncation or 1.0, "num_samples": args.num_samples,
                   "steps": args.steps, "sampler": args.sampler,
                   "feature_extractor": extractor, "real_vs_real": args.real_vs_real, "results": results})
    line = to_json(record)
    print(line)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from posgen.apps.reconstruct import ReconstructionSettings, reconstruction_study
    from posgen.sampling import load

    check_device(args.device)
    out = output_folder(args.out)
    models = {}
    for path in args.checkpoint:
        G, cfg, _ = load(path, args.device)
        if G.family != "ddpm":
            raise UsageError(f"reconstruct needs ddpm models (a reverse process); {path} is a {G.family} model")
        models[cfg.name if cfg.name not in models else path] = G
    try:
        times = tuple(int(t) for t in args.times.split(","))
    except ValueError:
        raise UsageError(f"malformed --times {args.times!r}: use e.g. 100,300,500") from None
    for G in models.values():
        T = G.diffusion.num_timesteps
        if not all(1 <= t <= T for t in times):
            raise UsageError(f"--times {args.times}: each t must be in 1..{T}")
    settings = ReconstructionSettings(times=times, num_images=args.num_images, stride=args.stride,
                                      region=args.region or ReconstructionSettings().region, canvas=args.size,
                                      shift=args.shift, seed=args.seed)
    record = reconstruction_study(models, out, settings)
    for name, by_t in record["models"].items():
        print(f"{name}: ink share in the input region " + ", ".join(f"t={t} {v['in_input_region']:.2f}"
                                                                   for t, v in by_t.items()))
    print(f"wrote {out / 'reconstruction.png'}, reconstruction-placement.png and reconstruction.json")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from posgen.apps.report import ReportSettings, write_report

    settings = ReportSettings(fid_samples=args.fid_samples, eq_samples=args.eq_samples)
    path = write_report(args.checkpoint, output_folder(args.out), settings)
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def parse_model_override(text: str) -> tuple[str, str]:
    from posgen.apps.study import EVERY

    name, sep, path = text.partition("=")
    if not sep or not path:
        raise UsageError(f"malformed --model {text!r}: use NAME=CHECKPOINT, e.g. digits-mspe=runs/my-mspe")
    if name not in EVERY:
        raise UsageError(f"--model {name!r} is not a model of the study; they are {', '.join(EVERY)}")
    return name, path


def cmd_study(args: argparse.Namespace) -> int:
    from posgen.apps.study import FINDINGS, Study, StudySettings

    settings = StudySettings(fid_samples=args.fid_samples, shift_samples=args.shift_samples,
                             eq_samples=args.eq_samples, noise_draws=args.noise_draws, models=dict(args.model or []))
    findings = args.findings or list(FINDINGS)
    unknown = [f for f in findings if f not in FINDINGS]
    if unknown:
        raise UsageError(f"unknown finding {unknown[0]!r}; choose from {', '.join(FINDINGS)}")
    Study(output_folder(args.out), settings).run(findings)
    print(f"wrote {', '.join(findings)} to {args.out} (figures and study.json)")
    return 0


def cmd_cips(args: argparse.Namespace) -> int:
    from posgen.apps.cips import PARTS, CIPSFigures, CIPSSettings

    parts = args.parts or list(PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise UsageError(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    settings = CIPSSettings(model=args.model, ne_model=args.ne_model, conv_model=args.conv_model,
                            panorama=args.panorama, fid_samples=args.fid_samples,
                            superres_samples=args.superres_samples, metric_samples=args.metric_samples)
    try:
        CIPSFigures(output_folder(args.out), settings).run(parts)
    except ValueError as e:
        raise UsageError(str(e)) from e
    print(f"wrote {', '.join(parts)} to {args.out} (figures and cips.json)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from posgen import checkpoint

    if args.verify:
        digest = checkpoint.verify(args.path)
        if digest is None:
            print(f"{checkpoint.resolve(args.path)} predates checksums (no sha256 stored): nothing to verify")
        else:
            print(f"ok {digest}")
        return 0
    tensors, cfg, state = checkpoint.load(args.path)
    n_g = sum(v.numel() for k, v in tensors.items() if k.startswith("G_ema."))
    total = state.get("total_steps")
    progress = {"step": state.get("step"), "total_steps": total, "kimg": state.get("kimg"),
                "train_seconds": state.get("seconds"), "generator_parameters": n_g,
                "complete": total is not None and state.get("step") == total,
                "world_size": state.get("world_size", 1),  # torchrun processes (runs before them: 1)
                "batch_per_rank": state.get("batch_per_rank", cfg.train.batch_size)}
    print(json.dumps({"checkpoint": str(checkpoint.resolve(args.path)), "progress": progress,
                      "config": cfg.to_dict()}, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from posgen.demo import run_demo

    path, scores = run_demo(output_folder(args.out), minutes=args.minutes, retrain=args.train)
    print("shift consistency (1 = the digit moves intact with the grid): "
          + ", ".join(f"{name} {score:.2f}" for name, score in scores.items()))
    print(f"wrote {path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from posgen.serve import ServeLimits, serve

    check_device(args.device)
    if args.port > 65535:
        raise UsageError(f"--port must be at most 65535, got {args.port}")
    serve(args.checkpoint, host=args.host, port=args.port, device=args.device,
          limits=ServeLimits(max_side=args.max_side, max_steps=args.max_steps, time_limit=args.time_limit))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="posgen", description="Spatially unbiased generators on explicit coordinate grids.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("presets", help="list presets, one line each")
    s.set_defaults(fn=cmd_presets)

    s = sub.add_parser("pretrained", help="list the models shipped with posgen (usable by name as --checkpoint)")
    s.set_defaults(fn=cmd_pretrained)

    s = sub.add_parser("train", help="train a GAN from a preset")
    s.add_argument("--preset", help="preset name (see `posgen presets`)")
    s.add_argument("--data", help="data source: digits, an image folder, a .zip archive or one image")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. model.channel_max=64")
    s.add_argument("--kimg", type=positive("kimg", high=1e9), help="training length in thousands of images")
    s.add_argument("--out", help="run directory (default runs/PRESET)")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue a run exactly where it stopped")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.add_argument("--seed", type=seed_number, default=0)
    s.add_argument("--minutes", type=positive("minutes"), help="stop (with a checkpoint) after this much time")
    s.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("generate", help="render seeds on a shifted / rolled / zoomed / resized grid")
    s.add_argument("--checkpoint", required=True, help="checkpoint file, run directory or shipped model name (see `posgen pretrained`)")
    s.add_argument("--seeds", type=parse_seeds, help="e.g. 0-7,10 (default 0-7, or 0 for a .png --out)")
    add_canvas_options(s)
    add_render_options(s)
    s.add_argument("--chunk-points", type=positive("chunk-points", int), metavar="N",
                   help="render at most N points per pass to bound memory on large canvases (pixel-independent "
                        "generators such as cips only; they render large canvases in chunks by default)")
    s.add_argument("--max-memory", type=parse_bytes, metavar="BYTES",
                   help="refuse renders estimated to need more memory than this, e.g. 4G or 512M (default: 80%% "
                        "of the memory available when posgen starts)")
    s.add_argument("--tile", type=positive("tile", int), metavar="N",
                   help="render N x N tiles (rounded to the model's tile stride) streamed into each PNG: exact for "
                        "padding-free and pixel-independent generators; default: tiles whenever one image would "
                        "take more than 256M and the generator tiles exactly")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.add_argument("--out", required=True, help="output folder (seedNNNN.png and grid.png), or one .png file "
                   "(one seed; default seed 0)")
    s.set_defaults(fn=cmd_generate)

    s = sub.add_parser("evaluate", help="compute metrics; prints one JSON object")
    s.add_argument("--checkpoint", help="checkpoint file, run directory or shipped model name (see `posgen pretrained`)")
    s.add_argument("--metrics", default="fid,kid,pr",
                   help="comma-separated: fid,kid,pr,swd,spectrum,eqt,eqt-frac,eqr,shift-consistency (default fid,kid,pr)")
    s.add_argument("--data", help="real data to compare with (default: the checkpoint's training data)")
    s.add_argument("--num-samples", type=positive("num-samples", int), default=10000,
                   help="generated images for fid/kid/pr/swd/spectrum, and at most this many real ones (default 10000)")
    s.add_argument("--feature-extractor", choices=["inception", "digits"],
                   help="feature network for fid/kid/pr (default: digits for the digits data, else inception)")
    s.add_argument("--inception-weights", metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth (else "
                   "$POSGEN_INCEPTION_WEIGHTS or the cache)")
    add_canvas_options(s, what="evaluate on")
    s.add_argument("--region", type=parse_region, metavar="TOP,LEFT,H,W",
                   help="content patch for shift-consistency in training pixels (digits: from the data config)")
    s.add_argument("--eq-samples", type=positive("eq-samples", int), default=256, help="samples for eqt/eqt-frac/eqr (default 256)")
    s.add_argument("--shift-samples", type=positive("shift-samples", int), default=64,
                   help="samples per shift for shift-consistency (default 64)")
    s.add_argument("--max-shift", type=positive("max-shift"), help="largest shift in pixels (default: patch size)")
    s.add_argument("--step", type=positive("step"), default=0.5, help="shift step in pixels (default 0.5)")
    add_render_options(s)
    s.add_argument("--batch-size", type=positive("batch-size", int), default=64)
    s.add_argument("--seed", type=seed_number, default=0)
    s.add_argument("--real-vs-real", action="store_true", help="compare two disjoint halves of the real data (the floor)")
    s.add_argument("--no-cache", action="store_true", help="do not read or write cached real-data statistics")
    s.add_argument("--out", help="append the JSON line to this file (and write plots beside it)")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("reconstruct", help="DDPM stochastic reconstruction of digits at an unseen position (Choi Fig. 9)")
    s.add_argument("--checkpoint", action="append", required=True,
                   help="ddpm checkpoint, run directory or shipped model name; repeat for each model")
    s.add_argument("--out", required=True, help="output folder for reconstruction.png / .json")
    s.add_argument("--times", default="100,200,300,400,500,600,700,800,900", help="encoding steps t (default 100..900)")
    s.add_argument("--num-images", type=positive("num-images", int), default=32, help="digits measured per t")
    s.add_argument("--stride", type=positive("stride", int), default=1,
                   help="decode with every N-th step (respaced ancestral sampler; default 1: all t steps)")
    s.add_argument("--region", type=parse_region, metavar="TOP,LEFT,H,W",
                   help="where the input digits sit (default 16,16,16,16: bottom-right, never seen in training)")
    s.add_argument("--size", type=parse_size, help="canvas HxW (default the training canvas; larger: an expand grid)")
    s.add_argument("--shift", type=parse_shift, metavar="DY,DX",
                   help="decode on the grid shifted by DY,DX (models with the shift capability: MS-PE)")
    s.add_argument("--seed", type=seed_number, default=0)
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.set_defaults(fn=cmd_reconstruct)

    s = sub.add_parser("report", help="HTML report card comparing generators side by side")
    s.add_argument("--checkpoint", action="append", required=True,
                   help="checkpoint, run directory or shipped model name; repeat for each model")
    s.add_argument("--out", required=True, help="output folder for report.html and report.json")
    s.add_argument("--fid-samples", type=positive("fid-samples", int), default=2000,
                   help="generated images per FID scale (default 2000)")
    s.add_argument("--eq-samples", type=positive("eq-samples", int), default=64)
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("study", help="reproduce the spatial-bias study's findings on the shipped digits models (docs/study.md)")
    s.add_argument("findings", nargs="*", metavar="FINDING", help="any of f1 f2 f3 f4 f5 f6 eq f8 (default: all)")
    s.add_argument("--out", default="docs/study", help="folder for the figures and study.json (default docs/study)")
    s.add_argument("--fid-samples", type=positive("fid-samples", int), default=10000,
                   help="generated images per FID/SWD figure (default 10000)")
    s.add_argument("--shift-samples", type=positive("shift-samples", int), default=256)
    s.add_argument("--eq-samples", type=positive("eq-samples", int), default=256)
    s.add_argument("--noise-draws", type=positive("noise-draws", int), default=100)
    s.add_argument("--model", type=parse_model_override, action="append", metavar="NAME=CHECKPOINT",
                   help="use CHECKPOINT in place of the shipped model NAME (repeatable)")
    s.set_defaults(fn=cmd_study)

    s = sub.add_parser("cips", help="CIPS figures and numbers: super-resolution, foveation, panoramas, blending, "
                                    "encoding analyses (docs/cips.md)")
    s.add_argument("parts", nargs="*", metavar="PART",
                   help="any of fid superres foveated panorama blend ablate encodings spectra (default: all)")
    s.add_argument("--out", default="docs/cips", help="folder for the figures and cips.json (default docs/cips)")
    s.add_argument("--model", default="digits-cips", help="planar CIPS checkpoint (default digits-cips)")
    s.add_argument("--ne-model", default="digits-cips-ne", help="its no-embedding ablation (default digits-cips-ne)")
    s.add_argument("--conv-model", default="digits-mspe", help="convolutional model to compare (default digits-mspe)")
    s.add_argument("--panorama", default="panorama-cips", help="cylindrical CIPS checkpoint (default panorama-cips)")
    s.add_argument("--fid-samples", type=positive("fid-samples", int), default=10000,
                   help="generated images per FID/SWD on the training canvas (default 10000)")
    s.add_argument("--superres-samples", type=positive("superres-samples", int), default=2000,
                   help="generated images per FID/SWD at 2x and 4x, and per spectrum (default 2000)")
    s.add_argument("--metric-samples", type=positive("metric-samples", int), default=256,
                   help="latents per seam, foveation and ablation measurement (default 256)")
    s.set_defaults(fn=cmd_cips)

    s = sub.add_parser("info", help="print a checkpoint's config and training progress")
    s.add_argument("path", help="checkpoint file, run directory or shipped model name (see `posgen pretrained`)")
    s.add_argument("--verify", action="store_true", help="recompute the tensors' SHA-256 and compare it with the "
                   "stored one: `ok DIGEST` (exit 0), a one-line error when corrupt (exit 2)")
    s.set_defaults(fn=cmd_info)

    s = sub.add_parser("demo", help="baseline, MS-PE and padding-free MS-PE side by side on shifted, zoomed and wide "
                                    "canvases, with their shift consistency")
    s.add_argument("--out", default="posgen-demo", help="output folder (default ./posgen-demo)")
    s.add_argument("--minutes", type=positive("minutes"), default=6.0, help="training time when training (default 6)")
    s.add_argument("--train", action="store_true", help="train even when shipped checkpoints exist")
    s.set_defaults(fn=cmd_demo)

    s = sub.add_parser("serve", help="a web page on localhost: drag, zoom, widen and rotate the canvas of one or two "
                                     "models side by side; change seed, truncation and noise")
    s.add_argument("--checkpoint", action="append", required=True,
                   help="checkpoint file, run directory or shipped model name; give it twice to compare two models "
                        "(the server loads these and no other file)")
    s.add_argument("--port", type=positive("port", int), default=8000, help="default 8000")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--max-side", type=positive("max-side", int), default=512,
                   help="longest canvas side a request may ask for, in pixels (default 512)")
    s.add_argument("--max-steps", type=positive("max-steps", int), default=50,
                   help="most sampling steps of a ddpm render (default 50)")
    s.add_argument("--time-limit", type=positive("time-limit"), default=10.0, metavar="SECONDS",
                   help="refuse renders predicted to take longer, and requests that wait longer (default 10)")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.set_defaults(fn=cmd_serve)

    add_app_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # paths that are not UTF-8 are printed with \x escapes, never crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(join_signed_values(list(sys.argv[1:] if argv is None else argv)))
        return args.fn(args)
    except (UsageError, ConfigError, DataError, CheckpointError, MetricError, CapabilityError) as e:
        print(f"posgen: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingError as e:
        print(f"posgen: training stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("posgen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped (`posgen ... | head`)
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
