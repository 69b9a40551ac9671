#!/usr/bin/env bash
# The radops walkthrough: add a file to the data lake, list the lake, inspect the file, read it
# back from Python, make a new file from it with a pipeline step, and show its lineage.
# Runs on whatever lake the environment configures (RADOPS_REMOTE, RADOPS_S3_ENDPOINT_URL...);
# by default on the embedded directory lake under $RADOPS_HOME.
#
#   bash examples/walkthrough/run.sh            # from any directory, as often as you like
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# A fresh radops home unless one is given: its lake starts empty, so the walkthrough can run
# again, and it is removed when the script ends (set RADOPS_HOME to keep what it made). (With a
# shared RADOPS_REMOTE the uid below can be added only once: files are immutable.)
fresh_home=""
if [ -z "${RADOPS_HOME:-}" ]; then
    fresh_home="$(mktemp -d)"
    export RADOPS_HOME="$fresh_home"
fi

# radops records who created each file: RADOPS_EMAIL, else `git config user.email`.
if [ -z "${RADOPS_EMAIL:-}" ] && [ -z "$(git config user.email 2>/dev/null || true)" ]; then
    export RADOPS_EMAIL=walkthrough@example.com
fi

# The Python that has radops installed (an activated virtual environment's, typically).
python="${PYTHON:-$(command -v python || command -v python3 || true)}"
if [ -z "$python" ]; then
    echo "run.sh: no python on PATH; activate radops' virtual environment or set PYTHON" >&2
    exit 1
fi

# Work in a scratch directory, so nothing is left in the directory the script is run from.
# On exit, however the script ends, remove it and the fresh home (never a home the user set).
work="$(mktemp -d)"
trap 'rm -rf "$work" ${fresh_home:+"$fresh_home"}' EXIT
cd "$work"

# Print a command like a shell prompt would, then run it.
step() {
    printf '\n$ %s\n' "$*"
    "$@"
}

echo "radops home: $RADOPS_HOME"

printf '\n$ echo "this is some data" > sample.txt\n'
echo "this is some data" > sample.txt

step radops datalake add sample.txt name_in_datalake.txt --copy
step radops datalake ls
step radops datalake info name_in_datalake.txt

printf '\n$ python read_file.py\n'
(cd "$here" && "$python" read_file.py)

# A pipeline step: its output, and how it was made, are recorded. Run it twice: the second
# run is skipped because its output is already in the data lake.
printf '\n$ python pipeline.py\n'
(cd "$here" && "$python" pipeline.py)
printf '\n$ python pipeline.py\n'
(cd "$here" && "$python" pipeline.py)
step radops datalake lineage processed_file.txt
