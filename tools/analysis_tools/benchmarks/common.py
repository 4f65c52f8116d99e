"""What the benchmarks share: devices, timing, peak memory, fresh worker processes, tables."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
ENTRY = REPO / 'tools' / 'analysis_tools' / 'benchmark.py'


def resolve_device(name: str) -> str:
    """``'auto'`` -> ``'cuda'`` where a GPU is visible, else ``'cpu'``; other names unchanged."""
    import torch

    if name == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise SystemExit(f'--device {name}: no CUDA device is visible to torch')
    return name


def device_label(device: str) -> str:
    """``'cpu (2 threads)'`` or ``'cuda (NVIDIA H200)'``: what a figure was measured on."""
    import torch

    if device.startswith('cuda'):
        return f'{device} ({torch.cuda.get_device_name(device)})'
    return f'{device} ({torch.get_num_threads()} threads)'


def sync(device: str) -> None:
    """Wait for queued GPU work, so that a timer stops after it (a no-op on CPU)."""
    import torch

    if str(device).startswith('cuda'):
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], device: str, warmup: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    times = []
    for i in range(warmup + repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def rss_mib() -> float:
    """The process's resident set now, in MiB."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


class PeakMemory:
    """Peak memory of the code in a ``with`` block above what was held when it started, in MiB.

    On a GPU: ``torch.cuda.max_memory_allocated`` over the memory allocated at the start. On CPU:
    how far the process's lifetime peak resident set (``ru_maxrss``) rises above its resident set
    at the start, so run it in a fresh process (see :func:`spawn_worker`) that has not yet peaked.
    """

    def __init__(self, device: str) -> None:
        self.device = str(device)
        self.mib = 0.0
        self._base = 0.0

    def __enter__(self) -> PeakMemory:
        import torch

        sync(self.device)
        if self.device.startswith('cuda'):
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            self._base = rss_mib()
        return self

    def __exit__(self, *exc) -> None:
        import torch

        sync(self.device)
        if self.device.startswith('cuda'):
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        self.mib = max(peak - self._base, 0.0)


def add_worker_argument(parser: argparse.ArgumentParser) -> None:
    """The hidden ``--worker`` option through which :func:`spawn_worker` starts a measurement."""
    parser.add_argument('--worker', help=argparse.SUPPRESS)


def spawn_worker(subcommand: str, args: argparse.Namespace, task: str) -> dict:
    """Run one measurement, ``task``, of ``subcommand`` in a fresh Python process.

    A fresh process starts with an empty allocator and a low peak resident set, so that one
    measurement's memory does not leak into the next. The worker gets this process's parsed
    arguments and returns the dict its module's ``run_worker(args, task)`` returns.
    """
    options = {k: v for k, v in vars(args).items() if k not in ('worker', 'command', 'json')}
    spec = json.dumps(dict(task=task, args=options))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *sys.path]))
    proc = subprocess.run(
        [sys.executable, str(ENTRY), subcommand, '--worker', spec],
        capture_output=True,
        text=True,
        cwd=os.getcwd(),
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f'benchmark {subcommand}: the {task!r} worker failed:\n'
                           f'{proc.stderr[-3000:]}')  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker_task(args: argparse.Namespace) -> tuple[argparse.Namespace, str]:
    """In a worker: the parent's arguments and the task :func:`spawn_worker` passed."""
    spec = json.loads(args.worker)
    return argparse.Namespace(**spec['args'], worker=None), spec['task']


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: a header line and one right-aligned line per row.

    Floats get 3 decimals below 10, 1 below 100 and none above; None is shown as '-'.
    """

    def cell(value: object) -> str:
        if isinstance(value, float):
            digits = 3 if abs(value) < 10 else 1 if abs(value) < 100 else 0
            return f'{value:,.{digits}f}'
        return '-' if value is None else str(value)

    texts = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in texts]) for i, c in enumerate(columns)]
    lines = ['  '.join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ['  '.join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in texts]
    return '\n'.join(lines)
