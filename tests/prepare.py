"""``python -m tests.prepare``: install what the test suite needs beyond Python packages.

The README's test command runs this before pytest. The suite needs, besides the ``test``
extra: Debian's ``chromium`` (the HTML lineage page, headless), Java 17, Maven and PostgreSQL
(the real Marquez server, ``tests/marquez_server.py``), and Marquez itself, which Maven
resolves from Maven Central into a cache outside the repository.

As root on Debian (or Ubuntu), missing system packages are installed with ``apt-get``. Elsewhere
nothing is installed: each missing piece is named in one line, with how to install it, and the
tests that need it fail saying the same. Never fails itself: the tests are the verdict.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

#: Debian package -> what shows it is there.
PACKAGES = {
    "chromium": lambda: shutil.which("chromium") is not None,
    "openjdk-17-jre-headless": lambda: shutil.which("java") is not None,
    "maven": lambda: shutil.which("mvn") is not None,
    "postgresql": lambda: _postgres_present(),
}


def _postgres_present() -> bool:
    from tests.marquez_server import MarquezUnavailable, postgres_bindir

    try:
        postgres_bindir()
    except MarquezUnavailable:
        return False
    return True


def missing_packages() -> list[str]:
    """The Debian packages whose programs are not found."""
    return [name for name, present in PACKAGES.items() if not present()]


def _say(message: str) -> None:
    print(f"tests.prepare: {message}", file=sys.stderr, flush=True)


def install(packages: list[str]) -> bool:
    """Install ``packages`` with apt-get when root on Debian; True if it did."""
    if not packages:
        return True
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _say(
            f"missing: {' '.join(packages)}; install them (Debian: sudo apt-get install "
            f"{' '.join(packages)}), the tests that need them fail until then"
        )
        return False
    _say(f"installing {' '.join(packages)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            _say(f"{' '.join(command[:2])} failed: {lines[-1] if lines else done.returncode}")
            return False
    return True


def resolve_marquez() -> bool:
    """Resolve Marquez's jars with Maven (cached outside the repository); True on success."""
    from tests.marquez_server import MarquezUnavailable, marquez_version
    from tests.marquez_server import resolve_marquez as resolve

    try:
        lib = resolve()
    except MarquezUnavailable as exc:
        _say(str(exc))
        return False
    _say(f"Marquez {marquez_version()}: {len(list(lib.glob('*.jar')))} jars in {lib}")
    return True


def main() -> int:
    install(missing_packages())
    still = missing_packages()
    if still:
        _say(f"still missing: {' '.join(still)}")
    if "maven" not in still and "openjdk-17-jre-headless" not in still:
        resolve_marquez()
    return 0


if __name__ == "__main__":
    sys.exit(main())
