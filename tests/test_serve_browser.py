"""`posgen serve` in a real browser: Playwright drives Debian's chromium (headless) over the page, drags the
canvas and moves a slider, and checks that each panel shows a new image equal, pixel for pixel, to what the
"CLI command" printed under it writes with `posgen generate`.

Skipped where the `playwright` package (the `[browser]` extra) or /usr/bin/chromium is missing
(`apt-get install chromium`; .ci/run installs it)."""
from __future__ import annotations

import shlex
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posgen.cli import main
from posgen.serve import ServeApp, ServeLimits, make_server

CHROMIUM = "/usr/bin/chromium"
# headless chromium in a container as root, quiet: no sandbox, no GPU, no calls home
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright: "
                               "pip install 'posgen[browser]'")
if not Path(CHROMIUM).exists():
    pytest.skip(f"the browser test needs chromium at {CHROMIUM}: apt-get install chromium", allow_module_level=True)

SETTLED = "() => posgen.panels.length > 0 && posgen.panels.every(p => !p.busy && p.want && p.img.dataset.query === p.want)"


@pytest.fixture(scope="module")
def page():
    app = ServeApp(["digits-mspe", "digits-baseline"], limits=ServeLimits(max_side=200))
    httpd = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/")
        page.wait_for_function(SETTLED, timeout=60_000)
        yield page
        browser.close()
    httpd.shutdown()
    httpd.server_close()


def shown(page, index: int) -> tuple[np.ndarray, str, str]:
    """The pixels panel `index` shows (its image as the browser decoded it, at its own size), the query
    it shows and its CLI command."""
    panel = page.locator(f"section.panel[data-model='{index}']")
    h, w, data = page.evaluate("""(i) => {
        const img = posgen.panels[i].img, canvas = document.createElement("canvas");
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const context = canvas.getContext("2d");
        context.drawImage(img, 0, 0);
        return [img.naturalHeight, img.naturalWidth,
                Array.from(context.getImageData(0, 0, img.naturalWidth, img.naturalHeight).data)];
    }""", index)
    pixels = np.array(data, dtype=np.uint8).reshape(h, w, 4)
    assert (pixels[..., 3] == 255).all()
    return pixels[..., :3], panel.locator("img").get_attribute("data-query"), panel.locator(".cli").inner_text()


def cli_render(command: str, out: Path) -> np.ndarray:
    argv = shlex.split(command)
    assert argv[:2] == ["posgen", "generate"] and argv[-2:] == ["--out", "view"]
    assert main(argv[1:-1] + [str(out)]) == 0
    seed = int(argv[argv.index("--seeds") + 1])
    return np.asarray(Image.open(out / f"seed{seed:04d}.png").convert("RGB"))


def test_dragging_the_canvas_pans_the_grid_and_every_panel_equals_its_cli_render(page, tmp_path):
    before = [shown(page, i)[0] for i in (0, 1)]
    view = page.locator("section.panel[data-model='0'] .view").bounding_box()
    # digits at 32x32 are shown 10 screen pixels per image pixel: 40 px right, 16 px down = shift (1.6, 4)
    x, y = view["x"] + view["width"] / 2, view["y"] + view["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y + 16)  # one move: no intermediate view can be the last one rendered
    page.mouse.up()
    page.wait_for_function(SETTLED, timeout=60_000)
    for i, model in enumerate(["digits-mspe", "digits-baseline"]):
        pixels, query, command = shown(page, i)
        assert "shift=1.6%2C4" in query, query
        assert command.startswith(f"posgen generate --checkpoint {model} --seeds 0 --shift 1.6,4"), command
        assert not np.array_equal(pixels, before[i])  # the drag moved the picture ...
        assert np.array_equal(pixels, cli_render(command, tmp_path / f"drag{i}"))  # ... to the CLI's render


def test_a_slider_rotates_the_grid_and_the_render_equals_the_cli(page, tmp_path):
    before, _, _ = shown(page, 0)
    page.locator("#rotate").fill("30")
    page.wait_for_function(SETTLED, timeout=60_000)
    pixels, query, command = shown(page, 0)
    assert "rotate=30" in query and "--rotate 30" in command
    assert not np.array_equal(pixels, before)
    assert np.array_equal(pixels, cli_render(command, tmp_path / "rotated"))
    assert page.locator("#rotate-out").inner_text() == "30\u00b0"


def test_a_refused_view_shows_the_servers_one_line_reason(page):
    page.locator("#zoom").fill("3")  # 8x: a 256x256 canvas, beyond this server's --max-side 200
    page.wait_for_function("() => posgen.panels.every(p => !p.busy && p.root.dataset.error)", timeout=60_000)
    status = page.locator("section.panel[data-model='0'] .status").inner_text()
    assert status == ("the canvas would be 256x256 pixels; this server renders at most 200 a side (--max-side)")
    page.locator("#zoom").fill("0")  # back to 1x: the panels render again
    page.wait_for_function(SETTLED, timeout=60_000)
    assert page.locator("section.panel[data-model='0'] .status").inner_text().startswith("32\u00d732 px")
