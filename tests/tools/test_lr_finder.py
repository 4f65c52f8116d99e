"""tools/analysis_tools/lr_finder.py on the tiny demo config: suggestions, the plot, divergence."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from tool_helpers import ROOT, load_module, load_tool


@pytest.fixture(scope='module')
def tiny_cfg(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp('lr_finder')
    tiny = load_module(ROOT / 'tests' / 'e2e' / 'tiny.py', 'lr_finder_tiny')
    return tiny.write_tiny_config(tmp, num_train=4, num_val=2)


def _find(*argv: str) -> tuple[dict, str]:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = load_tool('analysis_tools/lr_finder.py').main(list(argv))
    return result, out.getvalue()


def test_sweep_suggests_an_lr_inside_the_range_and_writes_only_the_plot(
    tiny_cfg: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result, printed = _find(str(tiny_cfg), '--start', '1e-5', '--end', '1e-2', '--iters', '8',
                            '--out', 'lr.png')  # fmt: skip
    assert len(result['losses']) == 8 and not result['diverged']
    assert np.allclose(result['lrs'], np.geomspace(1e-5, 1e-2, 8))
    steepest, min_div10 = result['suggestions']['steepest'], result['suggestions']['min_div10']
    assert math.isfinite(steepest) and 1e-5 <= steepest <= 1e-2
    assert math.isfinite(min_div10) and 1e-6 <= min_div10 <= 1e-3
    assert f'optim_wrapper = dict(optimizer=dict(lr={steepest:.2e}))' in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ['lr.png']  # no work dir, no checkpoint
    plot = cv2.imread(str(tmp_path / 'lr.png'))
    assert plot.shape[0] > 300 and plot.shape[1] > 500 and plot.std() > 10
    _find(str(tiny_cfg), '--iters', '5', '--end', '1e-4', '--out', 'lr.png')  # its own plot


def test_divergence_stops_the_sweep(tiny_cfg: Path, tmp_path: Path) -> None:
    out = tmp_path / 'diverged.png'
    result, printed = _find(str(tiny_cfg), '--start', '1e-4', '--end', '1e3', '--iters', '30',
                            '--out', str(out))  # fmt: skip
    assert result['diverged'] and len(result['losses']) < 30
    assert result['lrs'][-1] > 1e-3  # past the lr the demo trains at (AdamW, 1e-3)
    assert 'stopped early' in printed and out.is_file()


def test_bad_arguments_stop_before_training(tiny_cfg: Path, tmp_path: Path) -> None:
    tool = load_tool('analysis_tools/lr_finder.py')
    foreign = tmp_path / 'photo.png'
    cv2.imwrite(str(foreign), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(SystemExit, match='lr_finder did not write it'):
        tool.parse_args([str(tiny_cfg), '--out', str(foreign)])
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as err:
        tool.parse_args([str(tiny_cfg), '--start', '1', '--end', '0.1'])
    assert 'need 0 < --start < --end' in err.getvalue()
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:
        tool.parse_args(['--help'])
    assert 'tools/analysis_tools/lr_finder.py' in out.getvalue()
