"""`posgen serve`: a web page on which a person pans, zooms, widens and rotates the canvas of one or two
generators side by side, and changes seed, truncation and noise.

The page (`posgen/assets/serve.html`) is served by Python's standard `http.server`
(ThreadingHTTPServer): no web framework to install, nothing imported but the models. Its renders take
the path of `posgen generate`: a request's query is turned into the command line of `posgen generate`
for that view, parsed by the CLI's own parser, and rendered with the same steps (`Canvas` ->
`grid_for` -> `RenderOptions` checked against the family's capabilities -> `render_seeds`), so a page
image equals, pixel for pixel, the PNG that the command shown under it writes.

Endpoints (GET only):
    /                 the page
    /api/models       the models (name, family, capabilities, training canvas) and the server's limits
    /api/render?...   one PNG: model=INDEX (the order of --checkpoint) and the options of QUERY_OPTIONS;
                      the header X-Posgen-Info holds the grid, the render time and the CLI command

Bounds: one seed per request; a canvas side of at most `ServeLimits.max_side`; at most `max_steps`
sampling steps for iterative samplers (ddpm, which must name its steps); renders predicted to take
longer than `time_limit` seconds are refused before they start (the prediction scales a calibration
render made at start-up); a model renders one view at a time, and models render together only as far
as the cores hold torch's threads; a request that waits longer than the limit for its turn is
answered 503; the memory budget of `render_seeds` applies. Every refusal is one line of JSON,
{"error": ...}, with status 400.

Ctrl-C: the server stops listening, answers the requests in flight (503 to any that arrive meanwhile)
and exits 0.

Security: it listens on 127.0.0.1 by default and, there, answers only requests addressed to localhost
(no DNS rebinding from a web page); it loads the checkpoints named on its command line at
start-up and nothing else: a request picks one of them by index and can name no file.
"""
from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from io import BytesIO
from urllib.parse import parse_qs, urlsplit

from posgen.errors import CapabilityError, CheckpointError, ConfigError, UsageError, one_line
from posgen.options import canvas_from_args, grid_for, refusing, render_options

# query key -> option of `posgen generate`: everything a page may ask for (anything else is refused)
QUERY_OPTIONS = {"seed": "--seeds", "size": "--size", "zoom": "--zoom", "shift": "--shift", "roll": "--roll",
                 "rotate": "--rotate", "truncation": "--truncation", "noise": "--noise", "steps": "--steps",
                 "sampler": "--sampler"}
FLAGS = {"roll"}  # options without a value: "1" sets them, "0" or nothing leaves them out
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes no more
CLI_OUT = "view"  # the --out of the command shown on the page: a folder, where it writes seedNNNN.png


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask of the server."""

    max_side: int = 512       # longest canvas side in output pixels
    max_steps: int = 50       # sampling steps of iterative samplers (ddpm)
    time_limit: float = 10.0  # seconds: the longest predicted render, and the longest wait for the renderer


class Busy(Exception):
    """The renderer stayed busy longer than the time limit (HTTP 503)."""


@dataclass
class Model:
    name: str            # as named on the command line
    G: object            # posgen.models.base.Generator
    seconds_per_pixel: float  # per pixel and sampling step, from the calibration render
    lock: threading.Lock = field(default_factory=threading.Lock)  # one render of a model at a time


class ServeApp:
    """The models named on the command line, loaded once, and the one render path of the page."""

    def __init__(self, checkpoints: list[str], device: str = "cpu", limits: ServeLimits = ServeLimits()) -> None:
        import torch

        from posgen.cli import build_parser
        from posgen.sampling import load

        if not 1 <= len(checkpoints) <= 2:
            raise UsageError("serve shows one or two models side by side: give --checkpoint once or twice")
        self.limits = limits
        self.parser = build_parser()
        self.models = [Model(path, load(path, device).G, 0.0) for path in checkpoints]
        # renders at once: as many as the cores hold torch's threads (side-by-side models render together)
        self.parallel = max(1, (os.cpu_count() or 1) // torch.get_num_threads())
        self.slots = threading.BoundedSemaphore(self.parallel)
        self.answering_now = 0  # requests being answered (see `answering`), and whether `close` has begun
        self.closing = False
        self._settled = threading.Condition()
        self.page = (resources.files("posgen") / "assets" / "serve.html").read_bytes()
        for model in self.models:
            model.seconds_per_pixel = self._calibrate(model)

    # ---- the life of a request, and shutting down ----------------------------------------------
    @contextmanager
    def answering(self):
        """Count a request while it is answered; Busy once `close` has begun."""
        with self._settled:
            if self.closing:
                raise Busy("the server is stopping")
            self.answering_now += 1
        try:
            yield
        finally:
            with self._settled:
                self.answering_now -= 1
                self._settled.notify_all()

    def close(self) -> None:
        """Refuse new requests, wait for those being answered, then free the models in the calling thread.

        The handler threads are daemons (Ctrl-C does not wait for idle connections); one that held the last
        reference to a model while the interpreter shut down would free its tensors there, and torch's
        deallocation, stopped by Python halfway, aborts the process ("terminate called without an active
        exception")."""
        with self._settled:
            self.closing = True
            if self.answering_now:
                print(f"stopping: finishing {self.answering_now} request(s) in flight", file=sys.stderr, flush=True)
            self._settled.wait_for(lambda: self.answering_now == 0)
        self.models = []

    # ---- requests --------------------------------------------------------------------------
    def describe(self) -> dict:
        """What the page needs to build its controls."""
        return {"models": [{"index": i, "name": m.name, "family": m.G.family,
                            "capabilities": sorted(m.G.capabilities), "size": list(m.G.default_grid().size)}
                           for i, m in enumerate(self.models)],
                "limits": {"max_side": self.limits.max_side, "max_steps": self.limits.max_steps,
                           "time_limit": self.limits.time_limit}}

    def command(self, query: dict[str, str]) -> tuple[Model, list[str]]:
        """The model a query names and the arguments of `posgen generate` that render its view."""
        unknown = sorted(set(query) - set(QUERY_OPTIONS) - {"model"})
        if unknown:
            raise UsageError(f"unknown parameter {unknown[0]!r}; a render takes model and "
                             f"{', '.join(QUERY_OPTIONS)}")
        index, seed = query.get("model", ""), query.get("seed", "0")
        if not (index.isascii() and index.isdigit()) or int(index) >= len(self.models):
            raise UsageError(f"model must be an index from 0 to {len(self.models) - 1} (the checkpoints this "
                             f"server was started with), got {index!r}")
        if not (seed.isascii() and seed.isdigit()) or int(seed) > MAX_SEED:  # one seed, never a range to expand
            raise UsageError(f"seed must be one whole number from 0 to {MAX_SEED}, got {seed!r}")
        model = self.models[int(index)]
        argv = ["generate", "--checkpoint", model.name, "--seeds", seed]
        for key, option in QUERY_OPTIONS.items():
            value = query.get(key)
            if key == "seed" or value is None:
                continue
            if key in FLAGS:
                if value not in ("0", "1"):
                    raise UsageError(f"{key} must be 0 or 1, got {value!r}")
                argv += [option] if value == "1" else []
            else:
                argv += [f"{option}={value}"] if value.startswith("-") else [option, value]  # "-3,2" is no option
        return model, argv + ["--out", CLI_OUT]

    def render(self, query: dict[str, str]) -> tuple[bytes, dict]:
        """PNG bytes of one view and what the page shows beside it (grid, time, command)."""
        from PIL import Image

        from posgen.models.base import RenderOptions
        from posgen.sampling import render_seeds
        from posgen.viz import to_uint8

        model, argv = self.command(query)
        args = self.parser.parse_args(argv)
        G, limits = model.G, self.limits
        grid = grid_for(G, canvas_from_args(args), model.name)
        if max(grid.size) > limits.max_side:
            raise UsageError(f"the canvas would be {grid.height}x{grid.width} pixels; this server renders at most "
                             f"{limits.max_side} a side (--max-side)")
        options = render_options(args)
        refusing(lambda: G.check(RenderOptions(**options), grid, model.name))
        steps = 1
        if "steps" in G.capabilities:
            steps = options.get("steps") or 0
            if not 1 <= steps <= limits.max_steps:
                raise UsageError(f"{model.name} samples iteratively: give steps from 1 to {limits.max_steps} "
                                 f"(this server's --max-steps)")
        predicted = model.seconds_per_pixel * grid.height * grid.width * steps
        if predicted > limits.time_limit:
            raise UsageError(f"rendering {grid.height}x{grid.width} with {model.name} would take about "
                             f"{predicted:.0f} s here, more than this server's limit of {limits.time_limit:g} s "
                             "(--time-limit): render a smaller canvas" + (" or fewer steps" if steps > 1 else ""))
        with self._turn(model):
            t0 = time.perf_counter()
            image = render_seeds(G, args.seeds, grid, **options)[0]
            seconds = time.perf_counter() - t0
        buf = BytesIO()
        Image.fromarray(to_uint8(image[None])[0]).save(buf, format="PNG")  # as viz.save_image writes the CLI's PNG
        affine = [[round(float(v), 6) for v in row] for row in grid.affine[:2].tolist()]
        info = {"model": model.name, "size": [grid.height, grid.width], "affine": affine,
                "period": list(grid.period) if grid.period else None, "render_ms": round(seconds * 1000, 1),
                "command": shlex.join(["posgen", *argv])}
        return buf.getvalue(), info

    @contextmanager
    def _turn(self, model: Model):
        """Wait, at most the time limit, until `model` is free and a render slot is: Busy if not."""
        limit = self.limits.time_limit
        deadline = time.monotonic() + limit
        if not model.lock.acquire(timeout=limit):
            raise Busy(f"{model.name} has been busy rendering for {limit:g} s; try again")
        try:
            if not self.slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise Busy(f"the renderer has been busy for {limit:g} s; try again")
            try:
                yield
            finally:
                self.slots.release()
        finally:
            model.lock.release()

    # ---- start-up ------------------------------------------------------------------------------
    def _calibrate(self, model: Model) -> float:
        """Seconds per output pixel (and sampling step) of `model` on this machine: the second of two
        renders (the first warms up) of a canvas four times the training one where the family can
        widen, so that the fixed cost per render weighs little and the prediction errs on the slow side."""
        from posgen.grid import Canvas
        from posgen.sampling import render_seeds

        G = model.G
        h, w = G.default_grid().size
        canvas = Canvas(size=(2 * h, 2 * w)) if "expand" in G.capabilities else Canvas()
        grid = canvas.grid(G.default_grid())
        options = {"steps": 2, "sampler": "ddim"} if "steps" in G.capabilities else {}
        for _ in range(2):
            t0 = time.perf_counter()
            render_seeds(G, [0], grid, **options)
            seconds = time.perf_counter() - t0
        return seconds / (grid.height * grid.width * options.get("steps", 1))


class Handler(BaseHTTPRequestHandler):
    """GET /, /api/models and /api/render of the `ServeApp` on `self.server.app`."""

    server_version = "posgen-serve"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        try:
            with self.server.app.answering():
                self._answer()  # its frame, and whatever it held of a model, is gone when `answering` ends
        except Busy as e:
            self._json(503, {"error": one_line(e)})

    def _answer(self) -> None:
        app: ServeApp = self.server.app
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if self.server.loopback_only and host not in LOOPBACK:  # a web page's DNS rebinding to 127.0.0.1
            return self._json(403, {"error": f"this server answers requests addressed to localhost only, not to {host!r}"})
        url = urlsplit(self.path)
        if url.path == "/":
            return self._send(200, app.page, "text/html; charset=utf-8")
        if url.path == "/api/models":
            return self._json(200, app.describe())
        if url.path != "/api/render":
            return self._json(404, {"error": f"no page {url.path!r}; the server has /, /api/models and /api/render"})
        try:
            query = parse_qs(url.query, keep_blank_values=True, strict_parsing=bool(url.query))
            repeated = [k for k, v in query.items() if len(v) > 1]
            if repeated:
                raise UsageError(f"parameter {repeated[0]!r} given more than once")
            png, info = app.render({k: v[0] for k, v in query.items()})
        except (UsageError, CapabilityError, ConfigError, CheckpointError, ValueError) as e:
            return self._json(400, {"error": one_line(e)})
        except Busy as e:
            return self._json(503, {"error": one_line(e)})
        except Exception as e:  # a bug: answer in one line, keep serving
            return self._json(500, {"error": one_line(e, with_type=True)})
        self._send(200, png, "image/png", {"X-Posgen-Info": json.dumps(info)})

    def _json(self, status: int, body: dict) -> None:
        self._send(status, (json.dumps(body) + "\n").encode(), "application/json")

    def _send(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; "
                         "style-src 'unsafe-inline'; img-src blob:; connect-src 'self'")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-") -> None:  # refusals only: a drag sends dozens of renders
        if str(code)[0] in "45":
            super().log_request(code, size)


class _ServerIPv6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def make_server(app: ServeApp, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server bound to host:port (port 0: any free port; see `server_address`), not yet serving."""
    try:
        server = (_ServerIPv6 if ":" in host else ThreadingHTTPServer)((host, port), Handler)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port}: {one_line(e)}") from None
    server.daemon_threads = True
    server.app = app
    server.loopback_only = host in LOOPBACK
    return server


def serve(checkpoints: list[str], host: str = "127.0.0.1", port: int = 8000, device: str = "cpu",
          limits: ServeLimits = ServeLimits()) -> None:
    """Load `checkpoints`, then answer the page on host:port until interrupted."""
    app = ServeApp(checkpoints, device, limits)
    server = make_server(app, host, port)
    where = host if ":" not in host else f"[{host}]"
    print(f"serving {', '.join(m.name for m in app.models)} on http://{where}:{server.server_address[1]}/ "
          "(Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.close()
