"""tools/analysis_tools/get_model_complexity.py: printed parameter counts and FLOPs."""

from __future__ import annotations

import contextlib
import io
import re

from mmengine.config import Config
from mmengine.registry import DefaultScope
from tool_helpers import ROOT, load_tool

from instseg.registry import MODELS

DEMO = ROOT / 'configs' / 'demo' / 'mask_rcnn_r18_fpn_demo.py'
SWIN = ROOT / 'configs' / 'swin' / 'mask_rcnn_swin-t-p4-w7_fpn_1x_coco.py'
SHRINK_SWIN = ['model.backbone.embed_dims=24', 'model.backbone.depths=[2,2,2,2]']


def _run(*argv: str) -> tuple[str, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        figures = load_tool('analysis_tools/get_model_complexity.py').main(list(argv))
    return out.getvalue(), figures


def _printed(text: str, label: str) -> int:
    return int(re.search(rf'{label}: ([\d,]+)', text)[1].replace(',', ''))


def test_prints_parameters_of_the_built_model_and_flops() -> None:
    text, figures = _run(str(DEMO), '--shape', '64', '90')
    with DefaultScope.overwrite_default_scope('instseg'):
        model = MODELS.build(Config.fromfile(DEMO).model)
    assert _printed(text, 'total parameters') == sum(p.numel() for p in model.parameters())
    # The demo trains its ResNet-18 from scratch: nothing is frozen.
    assert _printed(text, 'trainable parameters') == figures['total_params']
    assert 'input shape: (1, 3, 64, 96)' in text  # padded to the size divisor 32
    flops = _printed(text, r'FLOPs \(backbone, neck, RPN head\)')
    assert flops == figures['flops'] > 0
    assert flops == figures['backbone'] + figures['neck'] + figures['rpn_head']

    # Convolutions dominate: four times the pixels cost about four times the FLOPs.
    _, larger = _run(str(DEMO), '--shape', '128', '192')
    assert 3.8 < larger['flops'] / flops < 4.2


def test_frozen_stages_show_in_trainable_parameters() -> None:
    text, figures = _run(
        str(SWIN), '--shape', '64', '64', '--cfg-options', *SHRINK_SWIN,
        'model.backbone.frozen_stages=1',
    )  # fmt: skip
    with DefaultScope.overwrite_default_scope('instseg'):
        cfg = Config.fromfile(SWIN)
        cfg.model.backbone.update(embed_dims=24, depths=[2, 2, 2, 2], frozen_stages=1)
        model = MODELS.build(cfg.model)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert frozen > 0
    assert _printed(text, 'trainable parameters') == figures['total_params'] - frozen
