"""Provenance: which code produced a result (recorded by training runs and experiments)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from mocodec import __version__


def code_version() -> str:
    """The git commit of this mocodec checkout (``+dirty`` with local changes), else the package version."""
    root = Path(__file__).resolve().parents[2]  # the folder holding the mocodec package
    try:
        git = functools.partial(subprocess.run, capture_output=True, text=True, check=True, timeout=10)
        commit = git(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"]).stdout.strip()
        dirty = git(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"mocodec {__version__}"
    return f"{commit}+dirty" if dirty else commit
