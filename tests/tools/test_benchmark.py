"""Every subcommand of tools/analysis_tools/benchmark.py runs end to end at a tiny setting, so
none of them can rot (tests/tools/test_benchmark_data.py and test_analysis_tools.py hold the
data and inference ones)."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
from tool_helpers import ROOT, load_tool

DEMO = ROOT / 'configs' / 'demo' / 'mask_rcnn_r18_fpn_demo.py'


def _benchmark(*argv: str) -> tuple[dict, str]:
    """``benchmark.py ARGV`` in this process -> (returned figures, printed text)."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = load_tool('analysis_tools/benchmark.py').main(list(argv))
    return result, out.getvalue()


def test_every_subcommand_has_a_module_with_the_contract() -> None:
    tool = load_tool('analysis_tools/benchmark.py')
    assert set(tool.SUBCOMMANDS) == {'inference', 'vs-torchvision', 'cascade', 'data', 'memory',
                                     'assigner', 'coco-eval', 'yolact'}  # fmt: skip
    for name in tool.SUBCOMMANDS:
        module = tool.subcommand_module(name)
        assert callable(module.add_arguments) and callable(module.run), name
        with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:
            tool.main([name, '--help'])
        assert f'benchmark.py {name}' in out.getvalue() and '--json' in out.getvalue(), name
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as err:
        tool.main(['no-such-benchmark'])
    assert "invalid choice: 'no-such-benchmark'" in err.getvalue()


def test_vs_torchvision_reports_every_row(coco_tiny, tmp_path: Path) -> None:
    ann = coco_tiny / 'annotations' / 'instances_val2017.json'
    out = tmp_path / 'bench.json'
    report, printed = _benchmark('vs-torchvision', '--tiny', '--threads', '1', '--eval-ann',
                                 str(ann), '--eval-per-image', '20',
                                 '--json', str(out))  # fmt: skip
    rows = {(r['task'], r['setting']) for r in report['rows']}
    assert rows == {('train', 'fp32'), ('infer', 'fp32'), ('infer', 'fuse,channels_last,bf16')}
    for row in report['rows']:
        assert row['instseg_s'] > 0 and row['ratio_vs_torchvision_fp32'] > 0
        assert row['model'] == 'mask_rcnn_r50_fpn_torchvision'
        assert row['weights'] == 'torchvision init'
    assert report['rows'][0]['torchvision_s'] > 0 and report['train_batch'] == 2
    assert report['rows'][1]['instseg_gflops'] > 1  # an R50-FPN forward is tens of GFLOP
    assert report['coco_eval']['bbox_mAP_cocometric'] == report['coco_eval']['bbox_mAP_pycocotools']
    assert 'instseg s' in printed and 'mask_rcnn_r50_fpn_torchvision' in printed
    assert json.loads(out.read_text())['rows'] == report['rows']


def test_vs_torchvision_times_another_backbone_against_the_same_torchvision_rows() -> None:
    swin = ROOT / 'configs' / 'swin' / 'mask_rcnn_swin-t-p4-w7_fpn_1x_coco.py'
    report, _ = _benchmark('vs-torchvision', '--tiny', '--threads', '1', '--configs', str(swin),
                           '--batch', '1', '--infer-sizes', '96x128', '--fast', 'bf16',
                           '--eval-ann', '')  # fmt: skip
    assert [(r['task'], r['size']) for r in report['rows']] == [
        ('train', '128x128'),
        ('infer', '96x128'),
        ('infer', '96x128'),
    ]
    assert {r['weights'] for r in report['rows']} == {'own init'}
    assert report['train_batch'] == 1 and report['rows'][0]['torchvision_s'] > 0
    assert 'coco_eval' not in report


def test_vs_torchvision_refuses_a_malformed_size() -> None:
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as err:
        _benchmark('vs-torchvision', '--train-size', '800by1333')
    assert "'800by1333' is not a size" in err.getvalue()


def test_memory_compares_with_cp_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / 'memory.json'
    result, printed = _benchmark('memory', '--config', str(DEMO), '--size', '64', '--instances',
                                 '10', '--threads', '1', '--json', str(out))  # fmt: skip
    rows = result['rows']
    assert [r['with_cp'] for r in rows] == [False, True]
    assert all(r['step_peak_mb'] > 0 and r['step_s'] > 0 for r in rows)
    assert rows[0]['loss'] == pytest.approx(rows[1]['loss'], rel=1e-4)  # same weights and data
    assert '64x64 image, 10 instances, ResNet-18, cpu' in printed and 'with_cp saves' in printed
    assert json.loads(out.read_text())['rows'] == rows


def test_assigner_compares_chunked_and_whole(tmp_path: Path) -> None:
    out = tmp_path / 'assigner.json'
    result, printed = _benchmark('assigner', '--size', '128', '--instances', '60', '--threads',
                                 '1', '--json', str(out))  # fmt: skip
    rows = result['rows']
    assert [r['method'] for r in rows] == ['chunked', 'whole'] and result['identical']
    assert all(r['anchors'] == 4092 and r['seconds'] > 0 for r in rows)
    assert rows[0]['positives'] == rows[1]['positives'] > 0
    assert 'assignments identical' in printed
    assert json.loads(out.read_text())['identical'] is True


def test_coco_eval_agrees_with_pycocotools(coco_tiny, tmp_path: Path) -> None:
    ann = coco_tiny / 'annotations' / 'instances_val2017.json'
    result, printed = _benchmark('coco-eval', str(ann), '--per-image', '20')
    assert result['detections'] == 20 * result['images'] > 0
    assert result['segm_mAP_cocometric'] == result['segm_mAP_pycocotools']
    assert result['cocometric_s'] > 0 and 'CocoMetric' in printed and 'pycocotools' in printed


def test_cascade_trains_times_and_evaluates(trained, tmp_path: Path) -> None:
    out = tmp_path / 'cascade.json'
    result, printed = _benchmark('cascade', '--configs', str(trained['cfg']), '--epochs', '1',
                                 '--warmup', '0', '--work-dir', str(tmp_path / 'work'),
                                 '--cfg-options', 'experiment_name=tools_cascade',
                                 '--json', str(out))  # fmt: skip
    (row,) = result['rows']
    assert row['name'] == 'tiny_demo_extra'
    assert row['iterations'] == 2 and row['ms_mean'] > 0  # 4 images, batch 2
    assert 0 <= row['bbox_mAP'] <= 1 and not math.isnan(row['segm_mAP'])
    assert 'ms/iter mean' in printed and out.is_file()
