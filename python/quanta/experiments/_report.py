"""What every reproduction script does with its results: ``results/<stem>.md`` with the plot
linked below the tables (when matplotlib could draw it), optionally the raw rows as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_report(
    out: Path,
    stem: str,
    md: str,
    plot: Callable[[Path], bool],
    caption: str,
    rows: Any = None,
) -> Path:
    """Write ``out/<stem>.md`` (and ``out/<stem>.json`` when ``rows`` is given), print the
    report, and return the path of the Markdown file. ``plot(png)`` draws ``out/<stem>.png``
    and returns whether it could."""
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{stem}.png"
    if plot(png):
        md += f"\n![{caption}]({png.name})\n"
    path = out / f"{stem}.md"
    path.write_text(md)
    if rows is not None:
        (out / f"{stem}.json").write_text(json.dumps(rows, indent=1, default=float) + "\n")
    print()
    print(md)
    print(f"wrote {path}", flush=True)
    return path
