"""Render ``--reliability-report`` JSON lines as the Markdown table of docs/reliability.md.

Usage: ``python -m tests.reliability.render REPORT.jsonl``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = ("fault", "remote", "trials", "failures", "data_lost", "events_lost", "notes")


def render(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    rows.sort(key=lambda row: (str(row.get("fault")), str(row.get("remote"))))
    out = ["| " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |"]
    out.append("|" + "---|" * len(COLUMNS))
    for row in rows:
        out.append("| " + " | ".join(str(row.get(c, "")) for c in COLUMNS) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(Path(sys.argv[1])))
