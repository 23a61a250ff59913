"""The building blocks of convtrain's HTML pages: one style, tables, embedded images, a page.

A run's and a sweep's report.html and explain.html are built from these, so they look alike
and each fix to the style reaches all three. Self-contained: no script, no network.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#222;padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
h2::first-letter{text-transform:uppercase}
.wide{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}th{background:#f4f4f4}
td{white-space:nowrap}pre.cmd{white-space:pre-wrap;overflow-wrap:anywhere}
td:first-child,th:first-child{text-align:left}
table.layers td:nth-child(2),table.layers th:nth-child(2){text-align:left}
table.text td,table.text th{text-align:left}
pre{background:#f8f8f8;border:1px solid #e4e4e4;padding:.75rem;overflow:auto;font-size:.8rem}
.metrics{display:flex;gap:1rem;flex-wrap:wrap}.metric{background:#f4f8fc;border:1px solid #cfe0f0;
border-radius:6px;padding:.6rem 1rem}.metric b{display:block;font-size:1.4rem}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.5rem 0}.muted{color:#777;font-size:.85rem}
summary{cursor:pointer;color:#555;font-size:.9rem}
"""


def img(path: Path, alt: str | None = None) -> str:
    """A PNG embedded in the page (the page stays readable wherever it is copied)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    text = alt or path.stem.replace("_", " ")
    return f'<img alt="{html.escape(text)}" src="data:image/png;base64,{data}">'


def linked_img(src: str, alt: str) -> str:
    """A PNG beside the page, by its relative path (a folder of many large pictures)."""
    return f'<img alt="{html.escape(alt)}" src="{html.escape(src)}">'


def _breakable(text: str) -> str:
    text = text.replace(".", ".<wbr>")
    return text.replace("_", "_<wbr>") if len(text) > 16 else text


def table(header: list[str], rows: list[list[Any]], css_class: str = "") -> str:
    # Cells keep to one line (a run's name broke at each hyphen, three lines a row); a long
    # dotted header may break after a dot or an underscore instead.
    head = "".join(f"<th>{_breakable(html.escape(str(h)))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    cls = f' class="{css_class}"' if css_class else ""
    # A table wider than a phone scrolls inside its box, not the whole page.
    out = f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="wide">{out}</div>'


def page(title: str, body: list[str]) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}"
        f"</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
