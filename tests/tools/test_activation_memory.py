"""tools/analysis_tools/activation_memory.py: bytes saved for backward, with and without with_cp."""

from __future__ import annotations

import contextlib
import io

import torch
from tool_helpers import ROOT, load_tool
from torch import nn

SWIN = ROOT / 'configs' / 'swin' / 'mask_rcnn_swin-t-p4-w7_fpn_1x_coco.py'


def test_counts_saved_activations_without_parameters() -> None:
    tool = load_tool('analysis_tools/activation_memory.py')
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
    # Linear keeps its input (4 x 8 floats) for the weight gradient, ReLU its output (4 x 16);
    # the weight is a parameter, not an activation.
    assert tool.saved_activation_bytes(model, torch.randn(4, 8)) == (4 * 8 + 4 * 16) * 4


def test_with_cp_keeps_less_for_backward() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        results = load_tool('analysis_tools/activation_memory.py').main(
            [str(SWIN), '--shape', '64', '64', '--backbone-only', '--cfg-options',
             'model.backbone.embed_dims=24', 'model.backbone.depths=[2,2,2,2]']
        )  # fmt: skip
    assert 0 < results[True] < results[False] / 2
    assert 'with_cp=True' in out.getvalue() and 'with_cp saves' in out.getvalue()
