"""An ML pipeline on the data lake: clean, split, train, evaluate and report, with lineage.

Every step is a ``@file_creator`` function: its outputs are data-lake files, its run is recorded
(code, inputs, parameters), and a call whose outputs are already in the lake is skipped. So a
parameter sweep reruns only what depends on the parameters that changed:

    python pipeline.py --max-depth 1 2 --report reports/wine-sweep-1.md
    python pipeline.py --max-depth 1 2 4 --report reports/wine-sweep-2.md   # only depth 4 runs

The raw data (UCI's wine.data) must be in the lake first: ``radops datalake add URL raw/wine.data``.
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split

from radops.data_lake import File, file_creator, reporting_calls

# The columns of UCI's wine.data, which has no header line: the class (1-3), then measurements.
COLUMNS = [
    "class",
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280_od315",
    "proline",
]
# The training and test sets' types: the class as an integer, the measurements as floats.
SCHEMA = pa.schema([("class", pa.int64()), *((name, pa.float64()) for name in COLUMNS[1:])])


# -- the steps --------------------------------------------------------------------------------


@file_creator
def clean(raw: File) -> File:
    """Keep the rows with every field numeric, drop exact duplicates, and add a header."""
    kept: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    with raw.open("r") as handle:
        for row in csv.reader(handle):
            if row and _numeric(row) and tuple(row) not in seen:
                seen.add(tuple(row))
                kept.append(row)
    out = File(suffix=".csv")  # implicit uid: derived from this call (function + input)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(kept)
    return out


def _numeric(row: list[str]) -> bool:
    """True if ``row`` has one finite number per column."""
    if len(row) != len(COLUMNS):
        return False
    try:
        return all(np.isfinite(float(value)) for value in row)
    except ValueError:
        return False


@file_creator
def split(data: File, test_fraction: float, seed: int, output_uids: list[str]) -> list[File]:
    """Split the rows into a training and a test set, keeping the classes' proportions.

    The two sets are Parquet files, typed once here (the class an integer, every measurement a
    float) so that training and evaluation read columns, not text. They have explicit uids
    (``output_uids``): names people use, like ``wine/train.parquet``.
    """
    with data.open("rb") as handle:
        table = pa_csv.read_csv(handle, convert_options=pa_csv.ConvertOptions(column_types=SCHEMA))
    train_rows, test_rows = train_test_split(
        np.arange(table.num_rows),
        test_size=test_fraction,
        random_state=seed,
        stratify=table.column("class").to_numpy(),
    )
    outputs = [File(uid) for uid in output_uids]
    for out, part in zip(outputs, (train_rows, test_rows), strict=True):
        with out.open("wb") as handle:
            pq.write_table(table.take(part), handle)
    return outputs


def _load(data: File) -> tuple[np.ndarray, np.ndarray]:
    """The measurements and the classes of a training or test set (Parquet)."""
    with data.open("rb") as handle:
        table = pq.read_table(handle)
    features = np.column_stack([table.column(name).to_numpy() for name in COLUMNS[1:]])
    return features, table.column("class").to_numpy()


@file_creator
def train(data: File, n_estimators: int, max_depth: int) -> File:
    """Fit a random forest; the model is pickled into a file with an implicit uid."""
    features, classes = _load(data)
    model = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=0)
    model.fit(features, classes)
    out = File(suffix=".pkl")
    with out.open("wb") as handle:
        pickle.dump(model, handle)
    return out


@file_creator
def evaluate(model: File, data: File) -> File:
    """Score the model on the test set: accuracy, macro F1 and the confusion matrix (JSON)."""
    with model.open("rb") as handle:
        # Only ever unpickle files you trust: this one was made by `train` above, and radops
        # checked its sha256 against the one recorded when it was created.
        forest = pickle.load(handle)  # noqa: S301
    features, classes = _load(data)
    predicted = forest.predict(features)
    metrics = {
        "accuracy": round(float(accuracy_score(classes, predicted)), 4),
        "f1_macro": round(float(f1_score(classes, predicted, average="macro")), 4),
        "confusion_matrix": confusion_matrix(classes, predicted).tolist(),
        "test_rows": len(classes),
    }
    out = File(suffix=".json")
    with out.open("w") as handle:
        json.dump(metrics, handle, indent=2)
    return out


@file_creator
def report(metrics: dict[str, File], output_uid: str) -> File:
    """A Markdown table of the sweep's metrics, best first, under a name chosen by the user."""
    scores: dict[str, dict[str, Any]] = {}
    for label, file in metrics.items():
        with file.open("r") as handle:
            scores[label] = json.load(handle)
    ranked = sorted(scores, key=lambda label: -scores[label]["f1_macro"])
    lines = [
        "# Wine classifier sweep",
        "",
        "| model | accuracy | F1 (macro) | test rows |",
        "|---|---|---|---|",
        *(
            f"| {label} | {scores[label]['accuracy']:.4f} | {scores[label]['f1_macro']:.4f} "
            f"| {scores[label]['test_rows']} |"
            for label in ranked
        ),
        "",
        f"Best: {ranked[0]}",
    ]
    out = File(output_uid)
    with out.open("w") as handle:
        handle.write("\n".join(lines) + "\n")
    return out


# -- running them, saying which steps ran and which were skipped ------------------------------

P = ParamSpec("P")
R = TypeVar("R")


def run_step(label: str, step: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call ``step`` and print one line: whether it ran or was skipped, and its outputs."""
    with reporting_calls() as calls:
        result = step(*args, **kwargs)
    files = result if isinstance(result, list) else [result]
    uids = ", ".join(file.uid for file in files if isinstance(file, File))
    print(f"{calls[-1].outcome:<8} {label:<22} -> {uids}", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Clean, split, train, evaluate and report.")
    parser.add_argument("--raw", default="raw/wine.data", help="uid of UCI's wine.data")
    parser.add_argument("--max-depth", type=int, nargs="+", default=[1, 2], help="the sweep")
    parser.add_argument("--n-estimators", type=int, default=10)
    parser.add_argument("--report", default="reports/wine-sweep.md", help="uid of the report")
    args = parser.parse_args(argv)

    cleaned = run_step("clean", clean, File(args.raw))
    # A fixed split (fraction and seed) with explicit uids: every model is scored on the same
    # rows. Changing them would need new uids, since data-lake files are immutable.
    train_set, test_set = run_step(
        "split",
        split,
        cleaned,
        test_fraction=0.3,
        seed=0,
        output_uids=["wine/train.parquet", "wine/test.parquet"],
    )
    metrics = {}
    for depth in args.max_depth:
        label = f"max_depth={depth}"
        model = run_step(
            f"train {label}", train, train_set, n_estimators=args.n_estimators, max_depth=depth
        )
        metrics[label] = run_step(f"evaluate {label}", evaluate, model, test_set)
    summary = run_step("report", report, metrics, output_uid=args.report)

    with summary.open("r") as handle:
        print(f"\n{summary.uid}:\n{handle.read()}", end="")


if __name__ == "__main__":
    main()
