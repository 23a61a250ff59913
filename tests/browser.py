"""Open a report.html in the system's headless Chromium and measure what a reader would see.

Playwright drives /usr/bin/chromium (Debian's package); Playwright's own browsers are never
downloaded. Only file:// and data: URLs load: any other request is aborted and recorded, and
Chromium is started with its background services off and every host name unresolvable, so
nothing leaves the machine.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

WIDE, NARROW = 1280, 420
SHOTS_ENV = "CONVTRAIN_SCREENSHOTS"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # a request that slipped past the route still fails
]
LOCAL = ("file:", "data:")
# Words a finished report never shows: a stub, or a number or object that was never filled in.
PLACEHOLDER = re.compile(r"\b(TODO|FIXME|XXX|[Ll]orem ipsum|placeholder|NaN|nan|None|undefined)\b")

# Run in the page: everything the checks need, measured after layout and image decoding.
MEASURE = """() => {
  const vw = window.innerWidth;
  const scrolls = el => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') return p !== document.body
        && p !== document.documentElement;
    }
    return false;
  };
  const name = el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : '')
    + (el.alt ? '[alt=' + el.alt + ']' : '');
  const wide = [...document.body.querySelectorAll('*')]
    .filter(el => el.getBoundingClientRect().right > vw + 0.5 && !scrolls(el))
    .filter(el => ![...el.children].some(c => c.getBoundingClientRect().right > vw + 0.5))
    .map(el => name(el) + ' ends at ' + Math.round(el.getBoundingClientRect().right) + 'px');
  const imgs = [...document.images];
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: vw,
    wide: wide,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 80)),
    noAlt: imgs.filter(i => !(i.getAttribute('alt') || '').trim()).map(i => i.src.slice(0, 80)),
    shrunk: imgs.filter(i => i.getBoundingClientRect().right > vw + 0.5).map(i => i.alt),
    images: imgs.map(i => i.alt),
    embedded: imgs.filter(i => i.src.startsWith('data:image/png;base64,'))
      .map(i => [i.alt, i.src.slice('data:image/png;base64,'.length)]),
    headings: [...document.querySelectorAll('h1, h2, h3')].map(h => h.textContent.trim()),
    emptySections: [...document.querySelectorAll('h2')].filter(h => {
      let text = '', pictures = 0;
      for (let n = h.nextElementSibling; n && !/^H[12]$/.test(n.tagName); n = n.nextElementSibling) {
        text += n.textContent.trim();
        pictures += n.tagName === 'IMG' ? 1 : n.querySelectorAll('img').length;
      }
      return !text && !pictures;
    }).map(h => h.textContent.trim()),
    text: document.body.innerText,
  };
}"""


@dataclass
class Seen:
    """What one page showed at one width."""

    width: int
    screenshot: Path
    measured: dict[str, Any]
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    blocked: list[str] = field(default_factory=list)  # those that were not local

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["measured"][key]
        except KeyError:
            raise AttributeError(key) from None


def chromium_path() -> str:
    """The system Chromium, or skip the test saying how to install it."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium is not installed: apt-get install chromium")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium, closed afterwards."""
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def look(browser: Any, page_path: Path, width: int, shot: Path) -> Seen:
    """Load `page_path` at `width` CSS pixels, measure it and take a full-page screenshot."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    seen = Seen(width, shot, {})

    def route(r: Any) -> None:
        if r.request.url.startswith(LOCAL):
            r.continue_()
        else:
            seen.blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("request", lambda req: seen.requests.append(req.url))
    page.on("console", lambda m: m.type == "error" and seen.console_errors.append(m.text))
    page.on("pageerror", lambda e: seen.page_errors.append(str(e)))
    try:
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        # Decoding may finish after load; wait on the images themselves, not on a clock.
        page.evaluate(
            "() => Promise.all([...document.images].map(i => i.decode().catch(() => null)))"
        )
        seen.measured = page.evaluate(MEASURE)
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    keep = os.environ.get(SHOTS_ENV)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(keep) / shot.name)
    return seen


def damaged(embedded: list[list[str]]) -> list[str]:
    """The alt text of each embedded PNG that Pillow finds cut short or corrupt: Chromium
    draws what it can of a truncated PNG and reports it loaded."""
    out = []
    for alt, data in embedded:
        try:
            with Image.open(io.BytesIO(base64.b64decode(data))) as im:
                im.load()
        except (OSError, ValueError, SyntaxError):
            out.append(alt)
    return out


def problems(seen: Seen, sections: list[str]) -> list[str]:
    """Everything a reader would find wrong, one line each; `sections` must be headings."""
    out = [f"image did not load: {b}" for b in seen.broken]
    out += [f"image is damaged: {a}" for a in damaged(seen.embedded) if a not in seen.broken]
    out += [f"image without alt text: {s}" for s in seen.noAlt]
    out += [f"image wider than the window: {s}" for s in seen.shrunk]
    out += [f"console error: {e}" for e in seen.console_errors]
    out += [f"page error: {e}" for e in seen.page_errors]
    out += [f"network request outside the machine: {u}" for u in seen.blocked]
    out += [
        f"request that is not a local file: {u}" for u in seen.requests if not u.startswith(LOCAL)
    ]
    if seen.scrollWidth > seen.innerWidth:
        out.append(
            f"the page scrolls sideways at {seen.width}px ({seen.scrollWidth} > "
            f"{seen.innerWidth}): {'; '.join(seen.wide[:5]) or 'no single element'}"
        )
    headings = [h.lower() for h in seen.headings]
    out += [f"missing section: {s}" for s in sections if s.lower() not in headings]
    out += [f"empty section: {s}" for s in seen.emptySections]
    out += [f"placeholder text: {w}" for w in sorted(set(PLACEHOLDER.findall(seen.text)))]
    return out
