"""The speed benchmarks run end to end at a tiny setting, so they cannot rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools'


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_vs_torchvision_reports_every_row(coco_tiny, tmp_path) -> None:
    tool = _load('benchmark_vs_torchvision')
    ann = coco_tiny / 'annotations' / 'instances_val2017.json'
    out = tmp_path / 'bench.json'
    report = tool.main(
        ['--tiny', '--eval-ann', str(ann), '--eval-per-image', '20', '--out', str(out)]
    )
    rows = {(r['task'], r['setting']) for r in report['rows']}
    assert rows == {('train', 'fp32'), ('infer', 'fp32'), ('infer', 'fuse,channels_last,bf16')}
    for row in report['rows']:
        assert row['instseg_s'] > 0 and row['ratio_vs_torchvision_fp32'] > 0
    assert report['rows'][1]['instseg_gflops'] > 1  # an R50-FPN forward is tens of GFLOP
    assert report['coco_eval']['bbox_mAP_cocometric'] == report['coco_eval']['bbox_mAP_pycocotools']
    assert out.is_file()
