"""Benchmark: the results viewer's file size and first render at 1,000 and 100,000 samples.

Writes synthetic finished runs (tests/data/viewer_support.py: the real record classes, every
status), builds each run's viewer.html, opens it in headless chromium (Debian's, via
Playwright) and prints, per size: the time to write the file, its size (and per 1,000
samples), and the first render: milliseconds from navigation start to the first frame with the
table drawn (``window.rewardflowRenderMs``), the same for the headline, which is drawn before
the sample data is parsed (``window.rewardflowHeadlineMs``), and the time a text search over
all samples takes to show its result.

Usage::

    apt-get install chromium && pip install playwright
    python bench/viewer_render.py [--sizes 1000 100000]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path
from types import ModuleType

from playwright.sync_api import sync_playwright

from rewardflow.reporting.viewer import build_viewer

SUPPORT = Path(__file__).resolve().parents[1] / "tests" / "data" / "viewer_support.py"


def load_support() -> ModuleType:
    spec = importlib.util.spec_from_file_location("viewer_support", SUPPORT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(support: ModuleType, playwright, root: Path, samples: int) -> dict[str, float]:
    run = support.write_run(root, f"bench-{samples}", prompts=samples)
    started = time.perf_counter()
    stats = build_viewer(run, run / "viewer.html")
    write_s = time.perf_counter() - started
    context = support.launch_chromium(playwright, root / f"profile-{samples}")
    try:
        page = context.new_page()
        page.goto(stats.path.as_uri(), timeout=300_000)
        page.wait_for_selector("body[data-ready]", timeout=300_000)
        render_ms = page.evaluate("window.rewardflowRenderMs")
        headline_ms = page.evaluate("window.rewardflowHeadlineMs")
        started = time.perf_counter()
        page.fill("#f-search", f"problem {samples // 2 + 1}:")
        page.wait_for_function(
            "document.getElementById('row-count').textContent.startsWith('1 of')", timeout=60_000
        )
        search_ms = 1000 * (time.perf_counter() - started)
    finally:
        context.close()
    return {
        "samples": samples,
        "write_s": write_s,
        "mb": stats.bytes / 1e6,
        "kb_per_1000": stats.bytes / 1e3 / (samples / 1000),
        "headline_ms": headline_ms,
        "render_ms": render_ms,
        "search_ms": search_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    args = parser.parse_args()
    support = load_support()
    print(
        "samples  write_s   file_MB  KB/1000  headline_ms  table_ms  search_ms"
        " (search includes a 150 ms debounce)"
    )
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            row = measure(support, playwright, Path(tmp), size)
            print(
                f"{row['samples']:>7}  {row['write_s']:>7.2f}  {row['mb']:>8.2f}  "
                f"{row['kb_per_1000']:>7.0f}  {row['headline_ms']:>11.0f}  "
                f"{row['render_ms']:>8.0f}  {row['search_ms']:>9.0f}"
            )


if __name__ == "__main__":
    main()
