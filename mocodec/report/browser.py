"""A report page opened in headless Chromium, offline: what it asked for, logged and drew, how fast, and a screenshot.

The one module that imports selenium (only when a browser is opened). It drives Debian's
``chromium`` through its ``chromedriver`` (``apt-get install -y chromium chromium-driver``)
with the network shut: every request goes to a proxy that does not exist and no host name
resolves, and the browser's own log of network requests is read back, so a page that asks
for anything beyond itself and ``data:`` URLs is caught even where the request fails silently.
Used by the browser tests, ``benchmarks/bench_report.py`` and ``mocodec report --screenshot``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mocodec.errors import MocodecError
from mocodec.files import atomic_write_bytes

INSTALL = "apt-get install -y chromium chromium-driver (Debian), and pip install selenium"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)
WIDTH, HEIGHT = 1400, 1000
READY_TIMEOUT = 60.0  # s: a page of hundreds of crops on a loaded 2-core machine


class BrowserMissing(MocodecError):
    """No headless Chromium (or no selenium) on this machine."""


def find_browser() -> tuple[str, str]:
    """``(chromium, chromedriver)`` paths (``MOCODEC_CHROMIUM`` / ``MOCODEC_CHROMEDRIVER`` override them), or :class:`BrowserMissing`."""
    browser = os.environ.get("MOCODEC_CHROMIUM") or next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = os.environ.get("MOCODEC_CHROMEDRIVER") or next((p for p in map(shutil.which, DRIVERS) if p), None)
    if not browser or not driver:
        missing = "chromium" if not browser else "chromedriver"
        raise BrowserMissing(f"no {missing} on this machine; install it: {INSTALL}")
    return browser, driver


def _selenium():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        raise BrowserMissing(f"selenium is not installed; {INSTALL}") from None
    return webdriver, Service, WebDriverWait


@contextlib.contextmanager
def headless_chromium(width: int = WIDTH, height: int = HEIGHT) -> Iterator[Any]:
    """A selenium driver of headless Chromium without network, logging the console and every request; quit on exit."""
    browser, driver_path = find_browser()
    webdriver, Service, _ = _selenium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI containers run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        "--proxy-server=127.0.0.1:9",  # nothing listens there: any request beyond the page fails
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--allow-file-access-from-files",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class PageCheck:
    """What a page did in the browser (see :func:`open_page`)."""

    console: list[dict[str, Any]] = field(default_factory=list)  # every console message: level, message
    requests: list[str] = field(default_factory=list)  # URLs asked for beyond the page itself and data: URLs
    failed_requests: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)  # <img> elements that did not load
    report: dict[str, Any] = field(default_factory=dict)  # the page's own window.mocodecReport
    timings: dict[str, float] = field(default_factory=dict)  # ms since navigation: dom_content_loaded, load, plots_drawn

    @property
    def console_errors(self) -> list[str]:
        return [m["message"] for m in self.console if m.get("level") == "SEVERE"]

    @property
    def problems(self) -> list[str]:
        """Everything wrong, one line each: console errors, network requests, images that did not load, script errors."""
        out = [f"console: {m}" for m in self.console_errors]
        out += [f"request: {u}" for u in self.requests] + [f"failed request: {u}" for u in self.failed_requests]
        out += [f"broken image: {i}" for i in self.broken_images]
        out += [f"image did not load: {i}" for i in self.report.get("imagesFailed", [])]
        out += [f"script error: {e}" for e in self.report.get("errors", [])]
        if self.report and self.report.get("imagesLoaded") != self.report.get("images"):
            out.append(f"{self.report.get('imagesLoaded')} of {self.report.get('images')} crops loaded")
        return out


def _network(driver: Any, page_url: str) -> tuple[list[str], list[str]]:
    """URLs requested beyond the page and ``data:`` URLs, and requests that failed, from Chromium's performance log."""
    asked, failed = [], []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if url != page_url and not url.startswith("data:"):
                asked.append(url)
        elif message.get("method") == "Network.loadingFailed" and not params.get("canceled"):
            failed.append(f"{params.get('requestId')}: {params.get('errorText')}")
    return asked, failed


def open_page(driver: Any, path: str | Path, timeout: float = READY_TIMEOUT) -> PageCheck:
    """Load ``path`` from disk, wait until its script says it is ready, and collect what it did (:class:`PageCheck`)."""
    _, _, WebDriverWait = _selenium()
    url = Path(path).resolve().as_uri()
    driver.get(url)  # returns after the load event
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script("return !!(window.mocodecReport && window.mocodecReport.ready)"))
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script(
            "const r = window.mocodecReport; return r.imagesLoaded + r.imagesFailed.length >= r.images"
            " && Array.from(document.images).every(i => i.complete);"
        )
    )
    check = PageCheck()
    check.report = driver.execute_script("return JSON.parse(JSON.stringify(window.mocodecReport));")
    navigation = driver.execute_script("return performance.getEntriesByType('navigation')[0].toJSON();")
    check.timings = {
        "dom_content_loaded": float(navigation["domContentLoadedEventEnd"]),
        "load": float(navigation["loadEventEnd"]),
        **({"plots_drawn": float(check.report["plotsDrawnAt"])} if check.report.get("plotsDrawnAt") is not None else {}),
    }
    check.broken_images = driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 60));"
    )
    check.console = driver.get_log("browser")
    check.requests, check.failed_requests = _network(driver, url)
    return check


def screenshot(driver: Any, out: str | Path, max_height: int = 4000, width: int | None = None, palette: int | None = None) -> Path:
    """The whole page (up to ``max_height`` CSS px) as a PNG; ``width``: scaled down to that many px, ``palette``: that
    many colours (dithered): a file a third the size, for a README."""
    from PIL import Image

    height = min(int(driver.execute_script("return document.documentElement.scrollHeight")), max_height)
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": driver.get_window_size()["width"], "height": height, "scale": 1},
        },
    )

    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    if width and image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    if palette:
        image = image.quantize(palette, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(out, buffer.getvalue())
    return Path(out)


def check_page(path: str | Path, screenshot_to: str | Path | None = None, width: int = WIDTH, **shot: Any) -> PageCheck:
    """Open ``path`` in a fresh headless Chromium, check it (:func:`open_page`), optionally save a screenshot (``shot``: its options)."""
    with headless_chromium(width) as driver:
        check = open_page(driver, path)
        if screenshot_to is not None:
            screenshot(driver, screenshot_to, **shot)
    return check


__all__ = ["BrowserMissing", "INSTALL", "PageCheck", "find_browser", "headless_chromium", "open_page", "screenshot", "check_page"]
