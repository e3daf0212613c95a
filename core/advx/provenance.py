"""What code and machine a result came from, recorded beside it (sweep trials, compare cells).

A comparison is only as clean as the code under it: a fix landed between two cells of one
study makes their difference hold the fix too. Recording the checkout's commit with every
cell lets ``advx compare show`` say when a study's cells span code versions, instead of a
reader finding out from the git log.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import subprocess
from pathlib import Path

__all__ = ["code_version", "machine"]


def code_version(folder: Path) -> str:
    """``advx <version>`` plus the git commit of ``folder``'s checkout (``-dirty`` when a tracked
    Python file has uncommitted changes; just the version outside a git checkout). Only Python
    files count: a study rewrites its own ledger entries and docs are edited while it runs,
    neither of which changes a result (recipes are recorded with each cell separately)."""
    from advx import __version__

    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, text=True,
                             capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "*.py"], cwd=folder, text=True, capture_output=True,
                               timeout=10).stdout
        return f"advx {__version__} git {sha}{'-dirty' if dirty.strip() else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"advx {__version__}"


@functools.lru_cache(maxsize=1)
def machine() -> str:
    """What a cell ran on, for the record: training is deterministic for a machine and a
    thread count, not across CPUs or library versions (a rebuilt start may differ). The CPU
    family and model tell apart generations that share a model name ("AMD EPYC")."""
    import torch

    info: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    cpu = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info:
        cpu += f" (family {info['cpu family']}, model {info.get('model', '?')})"
    return (f"{cpu}; {os.cpu_count()} CPUs; torch {torch.__version__} "
            f"({torch.backends.cpu.get_cpu_capability()}); python {platform.python_version()}")
