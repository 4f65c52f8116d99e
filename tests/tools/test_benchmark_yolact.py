"""benchmark.py yolact: the inference part runs both models and reports their times."""

from __future__ import annotations

import json
from pathlib import Path

from tool_helpers import load_tool


def test_inference_part_times_both_models_with_full_detections(tmp_path: Path) -> None:
    out = tmp_path / 'bench.json'
    report = load_tool('analysis_tools/benchmark.py').main(
        ['yolact', '--size', '128', '--num-images', '1', '--warmup', '0', '--json', str(out)]
    )
    rows = report['inference']['rows']
    assert [r['model'] for r in rows] == ['YOLACT R50', 'Mask R-CNN R50']
    # Score thresholds at 0: both keep max_per_img detections, so the mask stages run fully.
    assert all(r['detections'] == 100 and r['ms_median'] > 0 for r in rows)
    assert json.loads(out.read_text())['inference']['size'] == 128
