"""Build this repository's wheels with uv and install them into fresh virtual environments, with
their dependencies at the lock's versions (uv's cache makes that quick after `make install`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".venv-uv" / "bin" / "uv")
    assert Path(found).exists(), "uv not found: `make install` bootstraps it"
    return found


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    """Run a command to completion; its standard output, or an assertion error with both outputs."""
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_wheel(project: Path, out_dir: Path, pattern: str) -> Path:
    """`uv build --wheel` of `project` into `out_dir`; the one wheel whose name matches `pattern`."""
    run(uv(), "build", "--wheel", "--out-dir", out_dir, project)
    (built,) = out_dir.glob(pattern)
    return built


def fresh_venv(work: Path, wheel: Path, *, only_constrained: bool) -> Path:
    """A new virtual environment in `work` holding `wheel`. Its dependencies come at the lock's
    versions: all of the lock's runtime packages (`only_constrained=False`), or only those the
    wheel needs, pinned by the lock (`True`)."""
    venv = work / "venv"
    run(uv(), "venv", "--python", sys.executable, venv)
    locked = work / "locked.txt"
    locked.write_text(
        run(uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--quiet")
    )
    option = "-c" if only_constrained else "-r"
    run(uv(), "pip", "install", "--python", venv / "bin" / "python", option, locked, wheel)
    return venv
