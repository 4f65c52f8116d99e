"""Helpers for the tool tests: importing tools/*.py as modules and running them as a user does."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_module(path: Path, name: str) -> ModuleType:
    """Import a script (tools/*.py, tests/e2e/tiny.py) as a module by its path."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tool(relative: str) -> ModuleType:
    """``load_tool('analysis_tools/analyze_logs.py')`` -> the tool's module (main, parse_args)."""
    return load_module(ROOT / 'tools' / relative, 'tool_' + Path(relative).stem)


def run_tool(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python tools/<args>`` as a user would; returns the finished process."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / args[0]), *args[1:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
