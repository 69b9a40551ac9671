#!/usr/bin/env bash
# The ML pipeline example: add UCI's wine data set to the data lake from its URL, then clean,
# split, train, evaluate and report, twice with a growing parameter sweep and once more
# unchanged, and show how the report was made.
# Runs on whatever lake the environment configures (RADOPS_REMOTE, RADOPS_S3_ENDPOINT_URL...);
# by default on the embedded directory lake under a fresh $RADOPS_HOME.
#
#   bash examples/ml-pipeline/run.sh [URL]     # URL: default $WINE_URL, else UCI's wine.data
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
url="${1:-${WINE_URL:-https://archive.ics.uci.edu/ml/machine-learning-databases/wine/wine.data}}"

# A fresh radops home unless one is given: its lake starts empty.
export RADOPS_HOME="${RADOPS_HOME:-$(mktemp -d)}"

# radops records who created each file: RADOPS_EMAIL, else `git config user.email`.
if [ -z "${RADOPS_EMAIL:-}" ] && [ -z "$(git config user.email 2>/dev/null || true)" ]; then
    export RADOPS_EMAIL=ml-pipeline@example.com
fi

# The Python that has radops and the examples' packages installed (pip install 'radops[examples]').
python="${PYTHON:-$(command -v python || command -v python3 || true)}"
if [ -z "$python" ]; then
    echo "run.sh: no python on PATH; activate radops' virtual environment or set PYTHON" >&2
    exit 1
fi

# Print a command like a shell prompt would, then run it.
step() {
    printf '\n$ %s\n' "$*"
    "$@"
}

echo "radops home: $RADOPS_HOME"

# Data-lake files are immutable: on a shared lake the raw data is added once, by whoever
# comes first, and everyone else uses it.
if radops datalake info raw/wine.data >/dev/null 2>&1; then
    printf '\nraw/wine.data is already in the data lake\n'
else
    step radops datalake add "$url" raw/wine.data
fi

# Each line of the pipeline's output says whether a step ran or was skipped (its outputs were
# already in the lake). The second sweep adds max_depth=4: only its training and evaluation,
# and the new report, run. The third run changes nothing, so nothing runs.
step "$python" "$here/pipeline.py" --max-depth 1 2 --report reports/wine-sweep-1.md
step "$python" "$here/pipeline.py" --max-depth 1 2 4 --report reports/wine-sweep-2.md
step "$python" "$here/pipeline.py" --max-depth 1 2 4 --report reports/wine-sweep-2.md

# How the report was made, back to the URL the data came from.
step radops datalake lineage reports/wine-sweep-2.md --depth 6
