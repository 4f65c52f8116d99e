"""Mixed precision: AmpOptimWrapper on CPU (bfloat16), and fp32 where fp16 would overflow."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner.amp import autocast

from instseg.checkpoint import load_checkpoint_file
from instseg.engine import AmpOptimWrapper
from instseg.engine.config import enable_amp
from instseg.models.losses import CrossEntropyLoss, L1Loss, SmoothL1Loss
from instseg.models.roi_heads.mask_heads import paste_masks
from instseg.models.roi_heads.roi_extractors.single_level_roi_extractor import SingleRoIExtractor
from instseg.models.task_modules.assigners.iou2d_calculator import bbox_overlaps
from instseg.models.task_modules.coders.delta_xywh_bbox_coder import DeltaXYWHBBoxCoder
from instseg.registry import MODELS
from instseg.structures.masks import RLEMasks

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / 'configs' / 'demo' / 'mask_rcnn_r18_fpn_demo.py'
init_default_scope('instseg')


def _memory_benchmark():
    """The module of ``tools/analysis_tools/benchmark.py memory`` (its crowded test batch)."""
    path = ROOT / 'tools' / 'analysis_tools' / 'benchmark.py'
    spec = importlib.util.spec_from_file_location('benchmark_tool', path)
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    return entry.subcommand_module('memory')


def _wrapper(**kwargs) -> AmpOptimWrapper:
    model = torch.nn.Linear(2, 1)
    cfg = dict(type='AmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1), **kwargs)
    return build_optim_wrapper(model, cfg)


@pytest.mark.parametrize(
    ('loss_scale', 'scale'),
    [('dynamic', 2.0**16), (512, 512.0), (128.0, 128.0), (dict(init_scale=8.0), 8.0)],
)
def test_amp_wrapper_builds_on_cpu_in_bfloat16(loss_scale, scale: float) -> None:
    wrapper = _wrapper(loss_scale=loss_scale)
    assert isinstance(wrapper, AmpOptimWrapper)
    assert wrapper.cast_dtype == torch.bfloat16
    assert wrapper.loss_scaler.get_scale() == scale


def test_amp_wrapper_rejects_what_cpu_cannot_do() -> None:
    with pytest.raises(ValueError, match="dtype='bfloat16'"):
        _wrapper(dtype='float16')
    with pytest.raises(ValueError, match='dtype must be one of'):
        _wrapper(dtype='half')
    with pytest.raises(TypeError, match='loss_scale'):
        _wrapper(loss_scale='static')


def test_loss_scaler_state_survives_a_checkpoint(tmp_path: Path) -> None:
    wrapper = _wrapper(loss_scale=dict(init_scale=4.0, growth_interval=1))
    model = wrapper.optimizer.param_groups[0]['params'][0]
    for _ in range(3):
        wrapper.update_params((model.sum() - 1) ** 2)
    assert wrapper.loss_scaler.get_scale() == 32.0
    torch.save({'optimizer': wrapper.state_dict()}, tmp_path / 'ckpt.pth')
    restored = _wrapper(loss_scale=dict(init_scale=4.0, growth_interval=1))
    restored.load_state_dict(load_checkpoint_file(str(tmp_path / 'ckpt.pth'))['optimizer'])
    assert restored.loss_scaler.state_dict() == wrapper.loss_scaler.state_dict()


def test_bf16_training_step_and_inference_of_mask_rcnn() -> None:
    # what tools/train.py --amp does to the demo config: AdamW (fused) and clip_grad under AMP
    cfg = Config.fromfile(DEMO)
    enable_amp(cfg)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper, AmpOptimWrapper) and wrapper.cast_dtype == torch.bfloat16
    dtypes = []
    model.backbone.register_forward_hook(lambda m, i, out: dtypes.append(out[-1].dtype))
    batch = _memory_benchmark().build_batch(96, 6, num_classes=4)
    before = model.roi_head.mask_head.conv_logits.weight.detach().clone()

    losses = model.train_step(batch, wrapper)
    assert dtypes == [torch.bfloat16]  # autocast was on
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
    assert all(torch.isfinite(v).all() for v in losses.values())
    after = model.roi_head.mask_head.conv_logits.weight
    assert after.dtype == torch.float32 and torch.isfinite(after).all()
    assert not torch.equal(after, before)

    model.eval()
    with torch.no_grad(), autocast(dtype=torch.bfloat16):
        (sample,) = model.val_step(batch)
    assert dtypes[-1] == torch.bfloat16
    pred = sample.pred_instances
    assert len(pred) > 0
    assert pred.bboxes.dtype == torch.float32 and torch.isfinite(pred.bboxes).all()
    assert torch.isfinite(pred.scores).all() and (pred.scores <= 1).all()
    assert pred.masks.shape[-2:] == (96, 96) and pred.masks.to_tensor().dtype == torch.bool


# ---------------------------------------------------------------- fp32 where fp16 overflows
BIG = torch.tensor([[10.0, 20.0, 610.0, 520.0], [100.0, 100.0, 356.0, 356.0]])  # areas > 65504


def test_roi_levels_of_large_fp16_rois_do_not_overflow() -> None:
    extractor = SingleRoIExtractor(dict(output_size=7), 8, [4, 8, 16, 32])
    rois = torch.cat([torch.zeros(2, 1), BIG], dim=1)
    assert ((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])).half().isinf().all()
    expected = extractor.map_roi_levels(rois, 4)
    assert expected.tolist() == [3, 2]
    assert torch.equal(extractor.map_roi_levels(rois.half(), 4), expected)


def test_roi_coordinates_keep_fp32_precision_under_bf16_autocast() -> None:
    # bf16 has 8 bits of mantissa: 1000.3 would become 1000 and 1100.7 become 1104
    torch.manual_seed(0)
    extractor = SingleRoIExtractor(dict(output_size=7, sampling_ratio=2), 4, [4])
    feats = (torch.randn(1, 4, 300, 300),)
    rois = torch.tensor([[0.0, 1000.3, 700.3, 1100.7, 800.7]])
    expected = extractor(feats, rois)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = extractor((feats[0].bfloat16(),), rois)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), expected, atol=0.03, rtol=0.02)


def test_box_coder_in_fp16_matches_fp32() -> None:
    coder = DeltaXYWHBBoxCoder(target_stds=(0.1, 0.1, 0.2, 0.2))
    gt = BIG + torch.tensor([5.0, -3.0, 40.0, 12.0])
    expected = coder.encode(BIG, gt)
    half = coder.encode(BIG.half(), gt.half())
    assert torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), expected, atol=2e-2, rtol=1e-2)
    decoded = coder.decode(BIG.half(), half, max_shape=(1024, 1024))
    torch.testing.assert_close(decoded.float(), gt, atol=1.0, rtol=2e-3)


def test_iou_of_large_fp16_boxes_matches_fp32() -> None:
    other = BIG + 30.0
    expected = bbox_overlaps(BIG, other)
    half = bbox_overlaps(BIG.half(), other.half())
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), expected, atol=2e-3, rtol=2e-3)
    aligned = bbox_overlaps(BIG.half(), other.half(), mode='iof', is_aligned=True)
    torch.testing.assert_close(
        aligned.float(), bbox_overlaps(BIG, other, 'iof', True), atol=2e-3, rtol=2e-3
    )


def test_losses_sum_fp16_inputs_in_fp32() -> None:
    pred = torch.full((4000, 4), 30.0, dtype=torch.float16)  # sums to 480000 > 65504
    target = torch.zeros(4000, 4, dtype=torch.float16)
    for loss in (L1Loss(reduction='sum'), SmoothL1Loss(reduction='sum')):
        value = loss(pred, target)
        assert value.dtype == torch.float32
        assert value.item() == pytest.approx(loss(pred.float(), target.float()).item())
    logits = torch.tensor([[60000.0, -60000.0, 0.0]], dtype=torch.float16)
    value = CrossEntropyLoss()(logits, torch.tensor([1]))
    assert value.dtype == torch.float32 and value.item() == pytest.approx(120000.0)


def test_mask_pasting_from_fp16_matches_fp32() -> None:
    torch.manual_seed(0)
    probs = torch.rand(2, 28, 28)
    boxes = torch.tensor([[100.0, 50.0, 900.0, 1000.0], [1000.0, 1020.0, 1090.0, 1098.0]])
    expected = paste_masks(probs, boxes, (1100, 1100), threshold=-1)
    half = paste_masks(probs.half(), boxes.half(), (1100, 1100), threshold=-1)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, expected, atol=2e-3, rtol=0)  # fp16 rounding of probs
    assert half[1, 1020:1098, 1000:1090].gt(0).all() and half[1, :1019].eq(0).all()


def test_mask_targets_from_fp16_rois_match_fp32() -> None:
    canvas = np.zeros((1100, 1100), dtype=np.uint8, order='F')
    canvas[200:900, 300:1000] = 1
    masks = RLEMasks([mask_utils.encode(canvas)], 1100, 1100)
    rois = torch.tensor([[250.0, 150.0, 1000.0, 950.0]])  # exactly representable in fp16
    expected = masks.crop_and_resize(rois, (28, 28), torch.tensor([0]))
    assert torch.equal(masks.crop_and_resize(rois.half(), (28, 28), torch.tensor([0])), expected)
    assert expected.dtype == torch.float32 and 0 < expected.mean() < 1
