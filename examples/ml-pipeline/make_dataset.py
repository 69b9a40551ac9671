"""Write the UCI wine data set, as https://archive.ics.uci.edu publishes it, without a network.

scikit-learn ships a copy of it (``sklearn.datasets.load_wine``). This script writes that copy in
the format of UCI's ``wine.data`` (no header; the class, 1 to 3, then the 13 measurements),
followed by a few dirty rows of the kinds real files have, for the pipeline's cleaning step:

    python make_dataset.py wine.data            # then serve it: python -m http.server 8000
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sklearn.datasets import load_wine

# Rows a cleaning step must drop: a missing value, a truncated line, a typo, an exact duplicate
# (the first row again, added below) and an empty field.
DIRTY_ROWS = [
    "2,12.37,?,1.36,10.6,88,1.98,.57,.28,.42,1.95,1.05,1.82,520",
    "3,13.71,5.65,2.45,20.5,95,1.68",
    "1,13.2,1.78,2.14,11.2,l00,2.65,2.76,.26,1.28,4.38,1.05,3.4,1050",
    "2,12.29,1.41,1.98,16,85,2.55,2.5,.29,1.77,2.9,1.23,,428",
]


def wine_rows() -> list[str]:
    """The 178 wines, one line each, in UCI's format."""
    wine = load_wine()
    return [
        ",".join([str(int(target) + 1), *(f"{value:g}" for value in features)])
        for features, target in zip(wine.data, wine.target, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="where to write the file, e.g. wine.data")
    path: Path = parser.parse_args().path
    rows = wine_rows()
    lines = [*rows, DIRTY_ROWS[0], rows[0], *DIRTY_ROWS[1:], ""]  # a blank last line, too
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}: {len(rows)} wines and {len(DIRTY_ROWS) + 1} dirty rows")


if __name__ == "__main__":
    main()
