"""The applications' subcommands of `posgen` (project, edit, mix, video, sticking, singan): each
command's function and its parser, registered by `add_app_commands` (posgen.cli builds the rest).
Thin wrappers over posgen.apps; bad input is refused in one line (posgen.options, posgen.errors)."""
from __future__ import annotations

import argparse
import json

from posgen.errors import UsageError
from posgen.options import (add_canvas_options, add_render_options, canvas_from_args, check_device, finite,
                            grid_for, index_list, numbers, output_file, output_folder, parse_seeds, parse_shift,
                            positive, refusing, render_options, seed_number)

EXPERIMENT_PARTS = ("inversion", "sefa", "video")  # posgen project --experiment


def cmd_project(args: argparse.Namespace) -> int:
    from posgen.apps import projection as P

    if args.experiment:
        from posgen.apps.inversion import ExperimentSettings, run_all

        parts = tuple(p.strip() for p in args.parts.split(","))
        unknown = [p for p in parts if p not in EXPERIMENT_PARTS]
        if unknown or not parts:
            raise UsageError(f"unknown --parts {unknown[0] if unknown else args.parts!r}; choose from "
                             f"{', '.join(EXPERIMENT_PARTS)}")
        settings = ExperimentSettings(models=tuple(args.models.split(",")), count=args.count, steps=args.steps,
                                      grid_count=args.grid_count)
        run_all(output_folder(args.out), settings, parts=parts)
        print(f"wrote {args.parts} to {args.out} (figures, inversion.json, sefa.json, apps-numbers.md)")
        return 0
    if not args.checkpoint or (args.image is None) == (args.digit is None):
        raise UsageError("project needs --checkpoint and one of --image PNG or --digit INDEX (or --experiment)")
    if args.image and (args.target_shift or args.target_roll or args.target_zoom != 1):
        raise UsageError("--target-shift/--target-roll/--target-zoom transform a --digit; transform an --image yourself")
    check_device(args.device)
    out = output_folder(args.out)
    G, cfg, _ = load_model(args.checkpoint, args.device)
    P.require_mapping(G, args.checkpoint)
    grid = grid_for(G, canvas_from_args(args), args.checkpoint)
    if args.image:
        target = P.read_image(args.image, grid.size, G.cfg.img_channels)
    else:
        from posgen.apps.inversion import digit_image

        target = digit_image(cfg.data, args.digit, args.target_shift, args.target_roll, args.target_zoom)
    pcfg = P.ProjectionConfig(steps=args.steps, w_plus=args.w_plus, features=args.features,
                              feature_weight=args.feature_weight, optimize_noise=not args.no_noise,
                              optimize_grid=args.optimize_grid, seed=args.seed)
    trace = []

    def on_step(step: int, record: dict, images) -> None:
        if step % max(1, args.steps // 50) == 0 or step == args.steps - 1:
            trace.append(P.trace_frame(target, images))

    result = P.project(G, target, pcfg, grid=grid, data_source=cfg.data.source, on_step=on_step, progress=True,
                       model=args.checkpoint)
    meta = {"checkpoint": str(args.checkpoint), "image": args.image, "digit": args.digit, "w_plus": args.w_plus,
            "steps": args.steps, "optimize_grid": args.optimize_grid}
    summary = P.write_outputs(out, result, target, meta, trace)
    print(f"PSNR {summary['psnr'][0]:.2f} dB"
          + (f", feature distance {summary['feature_distance'][0]:.4f}" if summary["feature_distance"] else "")
          + f"; wrote latent.safetensors, reconstruction.png, trace.gif, loss.jsonl to {out}")
    return 0


def load_model(checkpoint: str, device: str):
    from posgen.sampling import load

    return load(checkpoint, device)


def cmd_edit(args: argparse.Namespace) -> int:
    from posgen.apps import projection as P
    from posgen.apps.sefa import describe, factorize, render_edits
    from posgen.models.base import RenderOptions
    from posgen.viz import save_image_grid

    check_device(args.device)
    G, cfg, _ = load_model(args.checkpoint, args.device)
    P.require_mapping(G, args.checkpoint)
    f = factorize(G, args.layers)
    if args.list:
        for row in describe(f, args.list):
            print(json.dumps(row))
        if args.out is None:
            return 0
    if args.out is None:
        raise UsageError("edit needs --out FOLDER (or --list K alone to list directions)")
    out = output_folder(args.out)
    grid = grid_for(G, canvas_from_args(args), args.checkpoint)
    options = render_options(args)
    refusing(lambda: G.check(RenderOptions(**options), grid, args.checkpoint))
    if args.latent:
        ws, _ = P.load_latent(args.latent)
        if tuple(ws.shape[1:]) != (G.num_ws, G.cfg.w_dim):
            raise UsageError(f"--latent {args.latent} holds ws of shape {list(ws.shape[1:])}; this generator "
                             f"takes [{G.num_ws}, {G.cfg.w_dim}]")
    else:
        import torch

        with torch.no_grad():
            ws = G.mapping(G.latents(args.seeds).to(args.device), options.pop("truncation_psi", 1.0))
        ws = ws[:, None].expand(-1, G.num_ws, -1)
    ws = ws.to(args.device)
    out.mkdir(parents=True, exist_ok=True)
    for d in args.direction:
        images = render_edits(G, ws, f, d, args.strengths, grid, RenderOptions(**options) if options else None)
        save_image_grid(images.transpose(0, 1).flatten(0, 1), out / f"direction{d:03d}.png", cols=len(args.strengths))
    (out / "directions.json").write_text(json.dumps({"layers": f.layers, "strengths": args.strengths,
                                                     "top": describe(f, max(args.direction) + 1)}, indent=2) + "\n")
    print(f"wrote {len(args.direction)} edit grids (rows: latents, columns: strengths {args.strengths}) to {out}")
    return 0


def cmd_mix(args: argparse.Namespace) -> int:
    from posgen.apps.mixing import style_mix
    from posgen.models.base import RenderOptions
    from posgen.viz import save_image_grid

    check_device(args.device)
    out = output_file(args.out, ".png")
    G, cfg, _ = load_model(args.checkpoint, args.device)
    grid = grid_for(G, canvas_from_args(args), args.checkpoint)
    options = RenderOptions(**render_options(args))
    images = refusing(lambda: style_mix(G, args.rows, args.cols, args.layers, grid, options, args.checkpoint))
    save_image_grid(images, out, cols=len(args.cols) + 1)
    print(f"wrote a {len(args.rows)}x{len(args.cols)} style-mixing grid (ws {args.layers} from the columns) to {out}")
    return 0


def cmd_video(args: argparse.Namespace) -> int:
    from posgen.apps.video import VideoConfig, render_video

    check_device(args.device)
    cfg = VideoConfig(kind=args.kind, frames=args.frames, fps=args.fps, space=args.space,
                      interpolation=args.interpolation, pan=tuple(args.pan) if args.pan else None,
                      zoom_range=tuple(args.zoom_range), degrees=args.degrees, upscale=args.upscale,
                      colors=args.colors)
    cfg.validate()
    output_file(args.out, ".gif")
    models = [(c, load_model(c, args.device)[0]) for c in args.checkpoint]
    info = refusing(lambda: render_video(models, args.seeds, cfg, args.out, canvas_from_args(args),
                                          render_options(args), progress=True))
    print(f"wrote {info['frames']} frames of {info['height']}x{info['width']} at {cfg.fps:g} fps to {info['path']}")
    return 0


def cmd_sticking(args: argparse.Namespace) -> int:
    from posgen.apps.sticking import StickingConfig, sticking_figure

    check_device(args.device)
    cfg = StickingConfig(frames=args.frames, pan=args.pan, upscale=args.upscale)
    cfg.validate()
    output_file(args.out, ".png")
    models = [(c, load_model(c, args.device)[0]) for c in args.checkpoint]
    rows = refusing(lambda: sticking_figure(models, args.seed, cfg, args.out, canvas_from_args(args),
                                            render_options(args)))
    for row in rows:
        print(f"{row['model']}: sticking ratio {row['sticking_ratio']:.3f}")
    print(f"wrote {args.out}")
    return 0


def cmd_singan(args: argparse.Namespace) -> int:
    from posgen.apps.singan import SinGANStudySettings, run

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if not models:
        raise UsageError("--models must name at least one SinGAN checkpoint")
    for name in models:  # every model loads (and is a SinGAN) before the first measurement
        if load_model(name, "cpu")[1].family != "singan":
            raise UsageError(f"--models {name}: not a SinGAN checkpoint")
    record = run(str(output_folder(args.out)), SinGANStudySettings(models=models, samples=args.samples,
                                                                   scale=args.scale))
    for name, r in record.items():
        print(name, {k: v for k, v in r.items() if k in ("reconstruction_rmse", "1x", "1.5x", "2x")})
    print(f"wrote {args.out}/singan.json and {args.out}/singan_samples.png")
    return 0


def add_app_commands(sub) -> None:
    """Add the applications' subcommands to `posgen`'s subparsers."""
    s = sub.add_parser("project", help="invert an image (a file, or a digit at a shift/zoom) into a generator: "
                                       "latent, reconstruction, trace GIF, per-step loss")
    s.add_argument("--checkpoint", help="checkpoint file, run directory or shipped model name")
    s.add_argument("--image", help="target image file (the size of the canvas)")
    s.add_argument("--digit", type=int, metavar="INDEX", help="target: scikit-learn digit INDEX drawn as the model's data")
    s.add_argument("--target-shift", type=parse_shift, metavar="DY,DX", help="with --digit: move the digit (whole px)")
    s.add_argument("--target-roll", action="store_true", help="with --target-shift: circular shift")
    s.add_argument("--target-zoom", type=int, default=1, help="with --digit: draw it 1, 2 or 4 times larger about "
                   "the top-left corner")
    add_canvas_options(s, what="render (the grid projected on, or the start of --optimize-grid)")
    s.add_argument("--steps", type=positive("steps", int), default=300)
    s.add_argument("--w-plus", action="store_true", help="optimise one w per layer (w+) instead of one w")
    s.add_argument("--features", choices=["auto", "digits", "inception", "none"], default="auto",
                   help="perceptual distance (default: digits for digits models, inception if its weights exist)")
    s.add_argument("--feature-weight", type=finite("feature-weight"), default=0.1)
    s.add_argument("--no-noise", action="store_true", help="do not optimise the noise inputs")
    s.add_argument("--optimize-grid", action="store_true", help="also optimise the grid's translation (and scale, "
                   "where the family renders denser grids)")
    s.add_argument("--seed", type=seed_number, default=0)
    s.add_argument("--experiment", action="store_true", help="run Choi Fig. 5's inversion experiment, the SeFa "
                   "equivariance measurement and the pan video on --models (docs/apps.md)")
    s.add_argument("--models", default="digits-baseline,digits-mspe,digits-mspe-nopad,digits-cips",
                   help="with --experiment: comma-separated checkpoints")
    s.add_argument("--count", type=positive("count", int), default=10, help="with --experiment: digits per transform")
    s.add_argument("--grid-count", type=positive("grid-count", int), default=3,
                   help="with --experiment: digits per transform for w + grid")
    s.add_argument("--parts", default=",".join(EXPERIMENT_PARTS),
                   help=f"with --experiment: any of {','.join(EXPERIMENT_PARTS)}")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.add_argument("--out", required=True, help="output folder")
    s.set_defaults(fn=cmd_project)

    s = sub.add_parser("edit", help="SeFa: list the top directions of the style weights; render latents moved along them")
    s.add_argument("--checkpoint", required=True, help="checkpoint file, run directory or shipped model name")
    s.add_argument("--list", type=positive("list", int), metavar="K", help="print the top K directions (JSON lines)")
    s.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-3"), help="latents to edit (default 0-3)")
    s.add_argument("--latent", help="edit a projected latent instead (latent.safetensors from `posgen project`)")
    s.add_argument("--direction", type=index_list("direction"), default=[0], help="direction indices, e.g. 0-2")
    s.add_argument("--strengths", type=numbers("strengths"), default=[-3.0, -1.5, 0.0, 1.5, 3.0],
                   help="steps along a direction in units of the spread of w along it (default -3,-1.5,0,1.5,3)")
    s.add_argument("--layers", type=index_list("layers"), help="ws indices to factorise and edit (default: all "
                   "modulated non-to-RGB layers)")
    add_canvas_options(s)
    add_render_options(s)
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.add_argument("--out", help="output folder")
    s.set_defaults(fn=cmd_edit)

    s = sub.add_parser("mix", help="layer-wise style mixing grid: row seeds with the styles of column seeds at --layers")
    s.add_argument("--checkpoint", required=True, help="checkpoint file, run directory or shipped model name")
    s.add_argument("--rows", type=parse_seeds, default=parse_seeds("0-3"), help="row seeds (default 0-3)")
    s.add_argument("--cols", type=parse_seeds, default=parse_seeds("4-7"), help="column seeds (default 4-7)")
    s.add_argument("--layers", type=index_list("layers"), default=[0, 1, 2, 3],
                   help="ws indices taken from the column seeds (default 0-3: the coarse layers)")
    add_canvas_options(s)
    add_render_options(s)
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.add_argument("--out", required=True, help="output .png")
    s.set_defaults(fn=cmd_mix)

    s = sub.add_parser("video", help="GIF: latent interpolation, or a pan / zoom / rotation of the grid; several "
                                     "--checkpoint side by side")
    s.add_argument("--checkpoint", action="append", required=True, help="checkpoint; repeat to compare models (rows)")
    s.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-3"), help="default 0-3")
    s.add_argument("--kind", choices=["interp", "pan", "zoom", "rotate"], default="interp")
    s.add_argument("--frames", type=positive("frames", int), default=60)
    s.add_argument("--fps", type=positive("fps"), default=12.0)
    s.add_argument("--space", choices=["auto", "w", "z"], default="auto",
                   help="interp: interpolate in w or z (default auto: w where the family has a mapping network)")
    s.add_argument("--interpolation", choices=["slerp", "lerp"], default="slerp")
    s.add_argument("--pan", type=numbers("pan", 2), metavar="DY,DX", help="pan: total motion in training pixels "
                   "(default 0,RESOLUTION)")
    s.add_argument("--zoom-range", type=numbers("zoom-range", 2), default=[1.0, 2.0], metavar="FROM,TO")
    s.add_argument("--degrees", type=finite("degrees"), default=360.0, help="rotate: total angle")
    s.add_argument("--upscale", type=positive("upscale", int), default=4, help="frame pixels per pixel (default 4)")
    s.add_argument("--colors", type=positive("colors", int), default=256, help="GIF palette per frame, 2-256 "
                   "(fewer: smaller files)")
    add_canvas_options(s)
    add_render_options(s)
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.add_argument("--out", required=True, help="output .gif")
    s.set_defaults(fn=cmd_video)

    s = sub.add_parser("singan", help="SinGAN figures and numbers: samples at 1x / 1.5x / 2x width, region-matched SWD "
                                      "and layout distance per model (Xu Fig. 1, 7; docs/singan.md)")
    s.add_argument("--models", default="singan-pad,singan-nopad,singan-csg,singan-spe",
                   help="comma-separated SinGAN checkpoints or shipped names (default: the four shipped)")
    s.add_argument("--samples", type=positive("samples", int), default=24)
    s.add_argument("--scale", type=int, default=None, help="measure at this pyramid scale (0: coarsest; default finest)")
    s.add_argument("--out", default="docs/singan", help="folder for singan.json and the figure (default docs/singan)")
    s.set_defaults(fn=cmd_singan)

    s = sub.add_parser("sticking", help="texture sticking (StyleGAN3 Fig. 1): first frame, screen average and pixel "
                                        "trace of a slow pan, and the sticking ratio, per --checkpoint")
    s.add_argument("--checkpoint", action="append", required=True, help="checkpoint; repeat to compare models (rows)")
    s.add_argument("--seed", type=seed_number, default=0)
    s.add_argument("--frames", type=positive("frames", int), default=32)
    s.add_argument("--pan", type=finite("pan"), default=8.0, help="total horizontal motion in training pixels "
                   "(default 8)")
    s.add_argument("--upscale", type=positive("upscale", int), default=4, help="figure pixels per pixel (default 4)")
    add_canvas_options(s)
    add_render_options(s)
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.add_argument("--out", required=True, help="output .png")
    s.set_defaults(fn=cmd_sticking)
