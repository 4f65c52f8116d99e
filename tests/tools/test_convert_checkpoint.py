"""tools/model_converters/convert_checkpoint.py: a torchvision file converted once, then loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from mmengine.config import Config
from tool_helpers import ROOT, load_tool, run_tool
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

from instseg.checkpoint import load_checkpoint_file
from instseg.checkpoint.load import load_detector_state
from instseg.registry import MODELS

TOOL = 'model_converters/convert_checkpoint.py'
TV_CONFIG = ROOT / 'configs' / 'mask_rcnn' / 'mask_rcnn_r50_fpn_torchvision.py'


def _tiny_torchvision() -> MaskRCNN:
    """torchvision Mask R-CNN in maskrcnn_resnet50_fpn's key layout: R18, 16 channels, 3 classes."""
    layers = {f'layer{i + 1}': str(i) for i in range(4)}
    backbone = BackboneWithFPN(torchvision.models.resnet18(), layers, [64, 128, 256, 512], 16)
    return MaskRCNN(
        backbone,
        box_head=TwoMLPHead(16 * 7 * 7, 32),
        box_predictor=FastRCNNPredictor(32, 4),
        mask_head=MaskRCNNHeads(16, [16], 1),
        mask_predictor=MaskRCNNPredictor(16, 16, 4),
    )


def test_cli_converts_a_torchvision_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tv = _tiny_torchvision()
    src = tmp_path / 'tv_maskrcnn.pth'
    torch.save(tv.state_dict(), src)
    dst = tmp_path / 'out' / 'converted.pth'
    done = run_tool(TOOL, str(src), str(dst), cwd=tmp_path)
    assert 'torchvision format' in done.stdout
    assert [p.name for p in dst.parent.iterdir()] == ['converted.pth']  # no temporary file left

    converted = load_checkpoint_file(str(dst))  # weights and plain metadata only
    assert converted['meta'] == dict(converted_from='tv_maskrcnn.pth', format='torchvision')
    state = converted['state_dict']
    cls = tv.roi_heads.box_predictor.cls_score.weight
    assert torch.equal(state['roi_head.bbox_head.fc_cls.weight'], cls[[1, 2, 3, 0]])

    cfg = Config.fromfile(TV_CONFIG)
    cfg.merge_from_dict(
        dict(
            model=dict(
                backbone=dict(depth=18),
                neck=dict(in_channels=None, out_channels=16),
                rpn_head=dict(in_channels=16, feat_channels=16),
                roi_head=dict(
                    bbox_roi_extractor=dict(out_channels=16),
                    bbox_head=dict(in_channels=16, fc_out_channels=32, num_classes=3),
                    mask_roi_extractor=dict(out_channels=16),
                    mask_head=dict(
                        num_convs=1, in_channels=16, conv_out_channels=16, num_classes=3
                    ),
                ),
            )
        )
    )
    model = MODELS.build(cfg.model)
    report = load_detector_state(model, converted, str(dst), strict=True, logger='silent')
    assert report.format == 'mmdet'  # already instseg's names: nothing left to convert


def test_cli_help_shows_examples(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_tool(TOOL).parse_args(['--help'])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert 'examples:' in out and '--format swin' in out
    assert '{auto,mmdet,torchvision,swin,convnext,backbone}' in out


def test_cli_refuses_an_unknown_layout(tmp_path: Path) -> None:
    src = tmp_path / 'weird.pth'
    torch.save({'encoder.weight': torch.ones(2)}, src)
    with pytest.raises(ValueError, match=r"weird\.pth.*'encoder\.weight'"):
        load_tool(TOOL).main([str(src), str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()
