"""Names in the lineage world: namespaces, datasets and jobs that every consumer can use.

Marquez, the reference OpenLineage server, is the strictest consumer radops knows, and its
rules decide the names (each was checked on a live Marquez 0.51, see docs/marquez.md):

- **Namespaces** match ``[A-Za-z0-9:/_\\-.@+]``. Marquez silently replaces other characters of
  a job namespace with ``_`` (radops would then query a namespace that does not exist) and
  keeps those of a dataset namespace, which its API then cannot answer for.
- **Dataset names** must not begin with a digit. The web UI opens a dataset through its node
  id ``dataset:<namespace>:<name>``, which Marquez splits at each ``:`` not followed by ``//``
  or digits (those are taken for ``scheme://`` and ``host:port``): with the namespace
  ``s3://lake``, the key ``2024/raw.txt`` gives ``dataset:s3://lake:2024/raw.txt``, which it
  cannot split, and its lineage endpoint answers 500. Such a name gets a leading ``/``.
- **One job per distinct call.** Marquez draws its lineage graph from each job's *current*
  version, and a job's version changes with the datasets of its latest run: had every call of a
  function been one job, the files of its earlier calls would show no creating job. So a run's
  job is the call (``<function>/<call id>``), and the function, which groups the calls, is
  named by the job's prefix and by radops' run facet.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "ADD_JOB",
    "DELETION_JOBS",
    "JOB_TYPES",
    "NAMESPACE_CHARACTERS",
    "REPAIR_JOB",
    "RM_JOB",
    "WRITE_JOB",
    "call_job",
    "check_namespace",
    "dataset_name",
    "function_name",
    "module_name",
    "safe_namespace",
]

#: The functions of radops' own commands: runs of these are not ``file_creator`` calls.
ADD_JOB = "radops.datalake.add"
WRITE_JOB = "radops.File.write"
RM_JOB = "radops.datalake.rm"
REPAIR_JOB = "radops.datalake.repair"
#: The commands whose outputs are deletions (``lifecycleStateChange: DROP``).
DELETION_JOBS = (RM_JOB, REPAIR_JOB)
#: The OpenLineage ``jobType`` of each command's runs (``file_creator`` runs: FILE_CREATOR).
JOB_TYPES = {
    ADD_JOB: "DATALAKE_ADD",
    WRITE_JOB: "FILE_WRITE",
    RM_JOB: "DATALAKE_RM",
    REPAIR_JOB: "DATALAKE_REPAIR",
}

#: The characters Marquez accepts in a namespace (the intersection of its API's validation and
#: of the replacement it applies to job namespaces).
NAMESPACE_CHARACTERS = "A-Za-z0-9:/_\\-.@+"
_NAMESPACE = re.compile(f"[{NAMESPACE_CHARACTERS}]{{1,1024}}")
_NOT_NAMESPACE = re.compile(f"[^{NAMESPACE_CHARACTERS}]")


def check_namespace(value: str) -> str:
    """``value`` if Marquez accepts it as a namespace as it is, else raise ValueError saying why."""
    if _NAMESPACE.fullmatch(value):
        return value
    bad = sorted(set(_NOT_NAMESPACE.findall(value)))
    if not value:
        raise ValueError("a namespace cannot be empty")
    if len(value) > 1024:
        raise ValueError(f"a namespace is at most 1024 characters, not {len(value)}")
    shown = " ".join(repr(char) for char in bad)
    raise ValueError(
        f"{value!r} has characters a lineage namespace cannot have ({shown}): use letters, "
        "digits and _ - . : / @ + only (Marquez's rule)"
    )


def safe_namespace(value: str) -> str:
    """``value`` with every character Marquez refuses replaced by ``_``, as Marquez does.

    For datasets radops names but does not choose, such as a URL input from an IPv6 host
    (``http://[::1]:8000`` becomes ``http://_::1_:8000``).
    """
    return _NOT_NAMESPACE.sub("_", value)[:1024] or "_"


def dataset_name(key: str) -> str:
    """The dataset name of an object ``key`` (the key; with a leading ``/`` if it starts with a
    digit, so that Marquez can parse the dataset's node id)."""
    return f"/{key}" if key[:1].isdigit() else key


def function_name(function: Callable[..., Any]) -> str:
    """The job name of a function: ``module.qualname``, where ``__main__`` is the script's path
    (see :func:`module_name`)."""
    qualname = str(getattr(function, "__qualname__", None) or getattr(function, "__name__", "?"))
    return f"{module_name(function)}.{qualname}"


def module_name(function: Callable[..., Any]) -> str:
    """The module of a function, where ``__main__`` is named by the script's path.

    Every script's ``process`` function would otherwise be ``__main__.process``: unrelated code
    sharing one name, in the lake's implicit uids and in Marquez's jobs. A script is named by
    its path in its git repository (``examples/walkthrough/pipeline.py`` gives
    ``examples.walkthrough.pipeline``), or by its absolute path outside a repository; a
    module run with ``python -m`` keeps its module name. Code without a file (a notebook, the
    interactive prompt) stays ``__main__``.
    """
    module = getattr(function, "__module__", None) or "__unknown__"
    return _main_module(function) if module == "__main__" else str(module)


def _main_module(function: Callable[..., Any]) -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and getattr(spec, "name", None) not in (None, "__main__"):
        return str(spec.name)  # python -m package.module
    script = getattr(main, "__file__", None)
    code = getattr(function, "__code__", None)
    defined_in = getattr(code, "co_filename", None)
    if not script or not defined_in:
        return "__main__"
    try:
        path = Path(script).resolve()
        if Path(defined_in).resolve() != path:
            return "__main__"  # defined elsewhere (an exec'd string, a notebook cell)
    except (OSError, ValueError):
        return "__main__"
    root = _repository_root(path)
    relative = path.relative_to(root) if root is not None else path.relative_to(path.anchor)
    return _bounded(".".join(relative.with_suffix("").parts)) or "__main__"


_MAX_MODULE = 120


def _bounded(name: str) -> str:
    """``name``, or its last dotted parts after a hash of the whole, when it is long: it is
    one segment of implicit uids, and a segment is at most 255 bytes."""
    if len(name.encode("utf-8")) <= _MAX_MODULE:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    tail = name.encode("utf-8")[-(_MAX_MODULE - 10) :].decode("utf-8", "ignore")
    tail = tail.split(".", 1)[1] if "." in tail else tail
    return f"h{digest}.{tail}"


def _repository_root(path: Path) -> Path | None:
    """The nearest folder above ``path`` that holds ``.git`` (no subprocess: decoration time)."""
    for folder in path.parents:
        if (folder / ".git").exists():
            return folder
    return None


def call_job(function: str, *identity: str) -> str:
    """The job of one distinct call of ``function``: ``<function>/<12 hex digits>``.

    ``identity`` is what tells the calls apart: the lake (two lakes share a job namespace),
    then the call digest (function, arguments, salt) and the declared output uids of a
    ``file_creator`` call, or the uid a ``datalake add`` makes.
    """
    digest = hashlib.sha256("\0".join(identity).encode("utf-8")).hexdigest()
    return f"{function}/{digest[:12]}"
