"""Provenance of a run: the versions of the packages that determine it and the git commit."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def versions() -> dict[str, str]:
    """Versions of the packages that determine a result, and the CPU kernels PyTorch dispatches to
    (``torch-cpu-kernels``: e.g. AVX512 or AVX2, set by ATEN_CPU_CAPABILITY; their roundings differ,
    so runs made with different kernels are not bitwise equal)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("svae-bench", "torch", "numpy", "scipy", "scikit-learn", "hydra-core"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    try:
        import torch

        out["torch-cpu-kernels"] = str(torch.backends.cpu.get_cpu_capability())
    except (ImportError, AttributeError, RuntimeError):
        out["torch-cpu-kernels"] = "unknown"
    return out


def git_commit() -> str | None:
    """The commit of the source tree this package runs from (with '+dirty' if modified), or None."""
    src = Path(__file__).resolve().parent
    try:
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", Path(__file__).name],
            cwd=src,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if tracked.returncode != 0:  # an installed copy, not a checkout
            return None
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=src,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
