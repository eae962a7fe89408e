#!/usr/bin/env python3
"""Set up and run, on a machine with only Python 3.11+:

    python3 dev.py demo    # a virtualenv with the project, then `userdebtor demo` on the embedded PostgreSQL
    python3 dev.py test    # the same set-up with the test tools, then the whole test suite

Anything after the command is passed on (e.g. `python3 dev.py test -k conversions`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _run(*command: str | Path, **kwargs) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True, cwd=ROOT, **kwargs)


def set_up(extras: str) -> None:
    """Create .venv once and (re)install the project into it; pip makes a second run quick."""
    if sys.version_info < (3, 11):  # noqa: UP036  (dev.py runs on whatever python3 the machine has)
        sys.exit(f"userdebtor-pipeline needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists() and not (BIN / "python.exe").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
        _run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", f".{extras}")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        set_up("")
        return subprocess.call([str(BIN / "userdebtor"), "demo", *rest], cwd=ROOT)
    set_up("[test]")
    _run(BIN / "ruff", "check", ".")
    code = subprocess.call([str(BIN / "python"), "-m", "pytest", "-p", "no:cacheprovider", *rest], cwd=ROOT)
    return 0 if code == 5 and rest else code  # 5: a -k filter that selected nothing


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
