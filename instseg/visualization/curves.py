"""Training curves: reading mmengine's JSON scalar logs and plotting them to PNG.

mmengine's ``LocalVisBackend`` writes one JSON object per line to ``vis_data/scalars.json`` (and
``vis_data/<timestamp>.json``): training lines carry ``epoch``, ``iter``, ``step`` (= iter) and
the logged values (``loss``, ``loss_cls``, ``lr``, ``time``, ...); validation lines carry the
metrics (``coco/segm_mAP``, ...) and ``step`` (= epoch in epoch-based training, else iter).
Plots use matplotlib's object API (no pyplot), so no global backend state is touched.
"""

from __future__ import annotations

import json
import os
import os.path as osp
from collections.abc import Sequence

import numpy as np

Series = dict[str, tuple[list[float], list[float]]]

# Width and height of one panel in inches, at 100 dpi: PNGs are 800 x 300 px per key.
PANEL_SIZE = (8.0, 3.0)
DPI = 100


def load_json_log(path: str) -> tuple[list[dict], list[dict]]:
    """Split an mmengine JSON scalar log into ``(train_rows, val_rows)``.

    Raises FileNotFoundError for a missing file and ValueError naming the file and line for a
    line that is not JSON.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Log file {path} does not exist')
    train, val = [], []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f'{path}:{number} is not JSON ({err.msg}); expected an mmengine scalar log '
                    '(work_dir/<timestamp>/vis_data/scalars.json)'
                ) from None
            if not isinstance(row, dict) or 'step' not in row:
                raise ValueError(f'{path}:{number} has no "step"; is it an mmengine scalar log?')
            (train if 'iter' in row else val).append(row)
    return train, val


def resolve_key(key: str, rows: Sequence[dict]) -> str | None:
    """``key`` as logged: exact, else the unique logged key ending in ``/key`` (``segm_mAP``)."""
    logged = {k for row in rows for k in row}
    if key in logged:
        return key
    matches = sorted(k for k in logged if k.endswith('/' + key))
    return matches[0] if len(matches) == 1 else None


def series_from_log(path: str, keys: Sequence[str]) -> dict[str, tuple[str, list, list]]:
    """For each key, ``(x label, xs, ys)``: iterations for training values, the logged step
    (epoch, or iteration in iteration-based training) for validation values.

    Raises KeyError naming the file and the keys it does log when a key is in neither part.
    """
    train, val = load_json_log(path)
    out = {}
    for key in keys:
        for rows, x_label in ((train, 'iter'), (val, 'epoch' if _by_epoch(train, val) else 'iter')):
            name = resolve_key(key, rows)
            if name is None:
                continue
            points = [(row['step'], row[name]) for row in rows if name in row]
            out[key] = (x_label, [p[0] for p in points], [float(p[1]) for p in points])
            break
        else:
            logged = sorted({k for row in train + val for k in row} - {'step', 'epoch', 'iter'})
            raise KeyError(f'{path} has no key {key!r}; it logs {logged}')
    return out


def _by_epoch(train: list[dict], val: list[dict]) -> bool:
    # Epoch-based runs log validation at step = epoch, which never exceeds the last epoch.
    if not val or not train:
        return True
    return max(row['step'] for row in val) <= max(row.get('epoch', 0) for row in train)


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Moving average over ``window`` points (shorter at the start), same length as ``values``."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) < 2:
        return values
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[start]) / (idx - start)


def plot_panels(
    panels: Sequence[tuple[str, str, Series]],
    out_file: str,
    title: str | None = None,
    smooth_window: int = 1,
) -> str:
    """Write one panel per entry, stacked vertically, to ``out_file`` (PNG, 800 x 300n px).

    Args:
        panels: ``(y label, x label, {legend: (xs, ys)})`` per panel.
        out_file: PNG path; its directory is created.
        title: figure title. Defaults to None.
        smooth_window: moving average applied to series with more than 50 points (raw values
            are drawn faintly behind). Defaults to 1 (none).

    Returns:
        ``out_file``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not panels:
        raise ValueError('plot_panels: nothing to plot')
    width, height = PANEL_SIZE
    fig = Figure(figsize=(width, height * len(panels)), dpi=DPI)
    FigureCanvasAgg(fig)
    for i, (y_label, x_label, series) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, i + 1)
        for legend, (xs, ys) in series.items():
            if smooth_window > 1 and len(ys) > 50:
                line = ax.plot(xs, ys, alpha=0.25, linewidth=0.8)[0]
                ax.plot(xs, smooth(ys, smooth_window), color=line.get_color(), label=legend)
            else:
                ax.plot(xs, ys, marker='o' if len(ys) <= 30 else None, markersize=3, label=legend)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.grid(True, alpha=0.3)
        ax.legend(loc='best', fontsize='small')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, format='png', dpi=DPI)
    return out_file
