"""`posgen serve` over plain HTTP: the page, renders equal to `posgen generate`'s, bounded requests refused in
one line with 400, and no file loaded but the checkpoints named at start-up."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from posgen import checkpoint
from posgen.cli import main
from posgen.serve import Busy, ServeApp, ServeLimits, make_server


@pytest.fixture(scope="module")
def server():
    """digits-mspe (index 0) and digits-ddpm (index 1) on a free port of 127.0.0.1."""
    app = ServeApp(["digits-mspe", "digits-ddpm"], limits=ServeLimits(max_side=256, max_steps=8, time_limit=10.0))
    httpd = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def get(httpd, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    port = httpd.server_address[1]
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(png)).convert("RGB"))


def cli_render(command: str, out) -> np.ndarray:
    """Run the page's "CLI command" (writing to `out` instead of view.png) and read its PNG."""
    argv = shlex.split(command)
    assert argv[:2] == ["posgen", "generate"] and argv[-2:] == ["--out", "view"]
    assert main(argv[1:-1] + [str(out)]) == 0
    seed = int(argv[argv.index("--seeds") + 1])
    return np.asarray(Image.open(out / f"seed{seed:04d}.png").convert("RGB"))


def test_get_root_serves_the_page_and_models_lists_the_named_checkpoints(server):
    status, headers, body = get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"posgen serve" in body and b"/api/render" in body
    status, _, body = get(server, "/api/models")
    described = json.loads(body)
    assert status == 200 and [m["name"] for m in described["models"]] == ["digits-mspe", "digits-ddpm"]
    assert "rotate" in described["models"][0]["capabilities"] and "steps" in described["models"][1]["capabilities"]
    assert described["models"][0]["size"] == [32, 32]
    assert described["limits"] == {"max_side": 256, "max_steps": 8, "time_limit": 10.0}


@pytest.mark.parametrize("query", [
    "model=0&seed=3&zoom=1.5&shift=-1.25,2.5&rotate=30&truncation=0.7",
    "model=0&seed=5&size=24x56&shift=3,-7&roll=1&noise=off",
    "model=1&seed=2&size=32x40&steps=3&sampler=ddim",
])
def test_a_render_equals_the_cli_render_of_its_command(server, tmp_path, query):
    status, headers, png = get(server, f"/api/render?{query}")
    assert status == 200 and headers["Content-Type"] == "image/png"
    info = json.loads(headers["X-Posgen-Info"])
    image = pixels(png)
    assert list(image.shape[:2]) == info["size"]
    assert np.array_equal(image, cli_render(info["command"], tmp_path / "cli"))
    # the view's parameters changed the picture
    model = query.split("&")[0]
    seed = query.split("&")[1]
    plain = pixels(get(server, f"/api/render?{model}&{seed}" + ("&steps=3&sampler=ddim" if model == "model=1" else ""))[2])
    assert plain.shape != image.shape or not np.array_equal(plain, image)


def test_the_command_shown_reads_back_to_the_same_options(server):
    _, headers, _ = get(server, "/api/render?model=0&seed=4&shift=-2,0.5&rotate=-15&zoom=2")
    info = json.loads(headers["X-Posgen-Info"])
    assert info["command"] == ("posgen generate --checkpoint digits-mspe --seeds 4 --zoom 2 --shift=-2,0.5 "
                               "--rotate=-15 --out view")
    assert info["size"] == [64, 64]
    # the grid: zoom 2 halves the spacing; rotation by -15 degrees about the canvas centre; shift last
    a = np.array(info["affine"])
    assert np.allclose(np.hypot(a[0, 0], a[1, 0]), 0.5) and np.isclose(np.degrees(np.arctan2(a[1, 0], a[0, 0])), -15)


def test_a_local_checkpoint_renders_like_the_cli(tmp_path):
    import shutil

    from posgen.pretrained import pretrained_path

    local = tmp_path / "my models" / "sspe.safetensors"  # a file of the user's, with a space to quote
    local.parent.mkdir()
    shutil.copy(pretrained_path("digits-sspe"), local)
    app = ServeApp([str(local)])
    png, info = app.render({"model": "0", "seed": "1", "shift": "0.5,-3", "size": "16x24"})
    assert info["command"].startswith(f"posgen generate --checkpoint {shlex.quote(str(local))} --seeds 1")
    assert np.array_equal(pixels(png), cli_render(info["command"], tmp_path / "local"))


@pytest.mark.parametrize("query, message", [
    ("model=0&size=300x32", "at most 256 a side (--max-side)"),
    ("model=0&zoom=16", "the canvas would be 512x512 pixels"),
    ("model=0&seed=0-99999999999", "seed must be one whole number from 0 to 18446744073709551615"),
    ("model=0&seed=18446744073709551616", "seed must be one whole number"),
    ("model=0&seed=x", "seed must be one whole number"),
    ("model=%C2%B2", "model must be an index from 0 to 1"),  # a superscript two: a digit, not ASCII
    ("model=0&truncation=abc", "--truncation must be a number"),
    ("model=0&shift=1;2", "malformed --shift"),
    ("model=0&noise=loud", "invalid choice: 'loud'"),
    ("model=0&roll=yes", "roll must be 0 or 1"),
    ("model=0&seed=1&seed=2", "'seed' given more than once"),
    ("model=1", "digits-ddpm samples iteratively: give steps from 1 to 8"),
    ("model=1&steps=9", "give steps from 1 to 8"),
    ("model=1&steps=2&rotate=10", "--rotate needs a generator that renders on rotated grids; digits-ddpm is a ddpm model"),
    ("model=1&steps=2&truncation=0.5", "--truncation needs a generator with a mapping network"),
    ("seed=1", "model must be an index from 0 to 1"),
    ("model=2", "model must be an index from 0 to 1"),
    ("model=-1", "model must be an index from 0 to 1"),
])
def test_out_of_bounds_or_bad_requests_are_refused_with_400_and_one_line_of_json(server, query, message):
    status, headers, body = get(server, f"/api/render?{query}")
    assert status == 400 and headers["Content-Type"] == "application/json"
    text = body.decode()
    assert text.endswith("\n") and "\n" not in text[:-1]
    assert message in json.loads(text)["error"]


def fail_load(*args, **kwargs):
    raise AssertionError(f"the server loaded a checkpoint after start-up: {args}")


@pytest.mark.parametrize("path", [
    "/api/render?model=0&checkpoint=digits-baseline",
    "/api/render?model=digits-baseline",
    "/api/render?model=/etc/passwd",
    "/api/render?model=0&out=/tmp/x.png",
    "/api/render?model=0&tile=8",
    "/api/render?model=0&seed=1%20--checkpoint%20digits-baseline",
    "/../../etc/passwd",
    "/src/posgen/assets/digits-mspe.safetensors",
])
def test_no_request_names_a_file_or_loads_one(server, monkeypatch, path):
    monkeypatch.setattr(checkpoint, "load_generator", fail_load)
    monkeypatch.setattr(checkpoint, "load", fail_load)
    status, _, body = get(server, path)
    assert status in (400, 404), body
    assert "error" in json.loads(body)
    assert get(server, "/api/render?model=0&seed=1")[0] == 200  # still serving, from the models it holds


def test_requests_addressed_to_another_host_are_refused(server):
    status, _, body = get(server, "/", headers={"Host": "attacker.example:80"})
    assert status == 403 and "localhost only" in json.loads(body)["error"]


def test_a_request_that_waits_longer_than_the_time_limit_gets_503(server, monkeypatch):
    app = server.app
    monkeypatch.setattr(app, "limits", ServeLimits(max_side=256, max_steps=8, time_limit=0.3))
    with app.models[0].lock:  # a long render of digits-mspe in progress
        t0 = time.perf_counter()
        status, _, body = get(server, "/api/render?model=0&seed=1")
    assert status == 503 and "digits-mspe has been busy" in json.loads(body)["error"] and time.perf_counter() - t0 < 5
    for _ in range(app.parallel):  # every render slot taken: any model waits
        app.slots.acquire()
    try:
        status, _, body = get(server, "/api/render?model=1&seed=1&steps=1")
    finally:
        for _ in range(app.parallel):
            app.slots.release()
    assert status == 503 and "the renderer has been busy" in json.loads(body)["error"]


def start_posgen_serve(*options: str) -> tuple[subprocess.Popen, int]:
    """`posgen serve --checkpoint digits-mspe OPTIONS` on a free port of 127.0.0.1, once it says it is serving."""
    import socket

    with socket.socket() as s:  # a free port (the server binds it a moment later)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "posgen.cli", "serve", "--checkpoint", "digits-mspe",
                             "--port", str(port), *options], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert line.startswith(f"serving digits-mspe on http://127.0.0.1:{port}/"), line
    return proc, port


def interrupt(proc: subprocess.Popen) -> tuple[int, str]:
    """Ctrl-C: the exit status and what the server printed after its first line."""
    import signal

    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=60), proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_posgen_serve_answers_get_on_localhost_and_stops_on_interrupt():
    proc, port = start_posgen_serve()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
            assert r.status == 200 and b"posgen serve" in r.read()
    finally:
        status, printed = interrupt(proc)
    assert status == 0, printed


def test_ctrl_c_during_a_render_finishes_it_and_exits_cleanly():
    """The render in flight is answered and the process exits 0: the models are freed by the main thread once
    no request holds them. (Before, a handler thread still inside torch when the interpreter shut down was
    stopped there by Python and aborted the process: "terminate called without an active exception".)"""
    proc, port = start_posgen_serve("--max-side", "1024")
    answers = []
    url = f"http://127.0.0.1:{port}/api/render?model=0&seed=1&size=1024x1024"
    client = threading.Thread(target=lambda: answers.append(urllib.request.urlopen(url, timeout=60).read()))
    try:
        client.start()
        time.sleep(1.5)  # the request has reached the renderer (the render takes about 2.6 s on 2 idle cores)
    finally:
        status, printed = interrupt(proc)
        client.join(timeout=60)
    assert status == 0, printed
    assert len(answers) == 1 and pixels(answers[0]).shape == (1024, 1024, 3)


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "/no/such/model.safetensors"], "no checkpoint at /no/such/model.safetensors"),
    (["--checkpoint", "digits-mspe", "--checkpoint", "digits-sspe", "--checkpoint", "digits-baseline"],
     "one or two models"),
    (["--checkpoint", "digits-mspe", "--port", "70000"], "--port must be at most 65535"),
    (["--checkpoint", "digits-mspe", "--max-side", "0"], "--max-side must be positive"),
])
def test_serve_refuses_bad_arguments_in_one_line(args, message, capsys):
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_render_predicted_past_the_time_limit_is_refused_before_it_starts():
    # the prediction scales each model's calibration render; a limit of a microsecond refuses any canvas
    app = ServeApp(["digits-mspe"], limits=ServeLimits(max_side=256, max_steps=8, time_limit=1e-6))
    httpd = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        status, headers, body = get(httpd, "/api/render?model=0&seed=0&size=64x64")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert "more than this server's limit of 1e-06 s (--time-limit)" in json.loads(body)["error"]
    assert body.count(b"\n") <= 1


def test_close_waits_for_the_requests_in_flight_then_refuses_new_ones():
    app = ServeApp(["digits-mspe"])
    inside, release = threading.Event(), threading.Event()

    def request():
        with app.answering():
            inside.set()
            release.wait(30)

    requester, closer = threading.Thread(target=request), threading.Thread(target=app.close)
    requester.start()
    assert inside.wait(30)
    closer.start()
    time.sleep(0.3)
    assert closer.is_alive() and len(app.models) == 1  # waits, the models still loaded
    with pytest.raises(Busy, match="the server is stopping"):
        with app.answering():
            pass
    release.set()
    closer.join(30)
    requester.join(30)
    assert not closer.is_alive() and app.models == [] and app.answering_now == 0
