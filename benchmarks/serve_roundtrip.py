"""Round trip of one interaction on the `posgen serve` page, measured by the page itself in headless chromium.

    python benchmarks/serve_roundtrip.py                                    # digits-mspe alone, then beside digits-baseline
    python benchmarks/serve_roundtrip.py --checkpoint singan-spe --moves 10
    python benchmarks/serve_roundtrip.py --screenshot docs/serve.png       # also the README's picture

Starts the real command (`posgen serve --checkpoint ... --port P`), opens the page in chromium
(Playwright, /usr/bin/chromium) and drags the first canvas --moves times, one pointer move of 8 screen
pixels each, waiting for every panel to show the new view before the next. The page stamps each input
event (performance.now()) and each image it puts on screen (decoded, on the next animation frame), so a
round trip is "drag -> image updated" as the person sees it: the request, the render, the PNG, the
decode. Prints, per model, the median / 90th percentile / largest round trip and the median server render.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SETTLED = "() => posgen.panels.length > 0 && posgen.panels.every(p => !p.busy && p.want && p.img.dataset.query === p.want)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(checkpoints: list[str], moves: int, screenshot: str | None = None) -> dict[str, list[dict]]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    argv = [sys.executable, "-m", "posgen.cli", "serve", "--port", str(port)]
    for c in checkpoints:
        argv += ["--checkpoint", c]
    server = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        if not line.startswith("serving"):
            raise SystemExit(f"posgen serve did not start: {line}{server.stderr.read()}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 960})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function(SETTLED, timeout=60_000)
            box = page.locator("section.panel[data-model='0'] .view").bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            for _ in range(3):  # warm-up: the first renders of a view size, the browser's first decodes
                page.mouse.move(x, y), page.mouse.down(), page.mouse.move(x + 8, y), page.mouse.up()
                page.wait_for_function(SETTLED, timeout=60_000)
            page.evaluate("() => { posgen.latencies.length = 0; }")
            for i in range(moves):
                step = 8 if i % 2 == 0 else -8  # back and forth: the view stays in the same place
                page.mouse.move(x, y), page.mouse.down(), page.mouse.move(x + step, y), page.mouse.up()
                page.wait_for_function(SETTLED, timeout=60_000)
            rows = page.evaluate("() => posgen.latencies")
            if screenshot:
                page.locator("#width").fill("64")
                page.wait_for_function(SETTLED, timeout=60_000)
                page.mouse.move(x, y), page.mouse.down(), page.mouse.move(x + 60, y + 30, steps=6), page.mouse.up()
                page.locator("#rotate").fill("12")
                page.wait_for_function(SETTLED, timeout=60_000)
                page.screenshot(path=screenshot, full_page=True)
                print(f"wrote {screenshot}")
            browser.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    return by_model


def report(title: str, by_model: dict[str, list[dict]]) -> None:
    print(title)
    for model, rows in by_model.items():
        ms = sorted(r["ms"] for r in rows)
        p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
        render = statistics.median(r["render_ms"] for r in rows)
        print(f"  {model:<22} drag -> image: median {statistics.median(ms):6.1f} ms, p90 {p90:6.1f} ms, "
              f"max {ms[-1]:6.1f} ms over {len(ms)} moves; server render median {render:5.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="digits-mspe", help="the model measured (default digits-mspe)")
    ap.add_argument("--beside", default="digits-baseline", help="second model for the side-by-side run ('' to skip)")
    ap.add_argument("--moves", type=int, default=30)
    ap.add_argument("--screenshot", help="write a screenshot of the side-by-side page here")
    args = ap.parse_args()
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    report(f"{args.checkpoint} alone", measure([args.checkpoint], args.moves))
    if args.beside:
        report(f"{args.checkpoint} beside {args.beside} (rendering side by side)",
               measure([args.checkpoint, args.beside], args.moves, args.screenshot))


if __name__ == "__main__":
    main()
