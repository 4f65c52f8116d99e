"""DetTTAModel: predictions of flipped and rescaled views come back to the original image and
merge (boxes by NMS, masks by a score-weighted vote)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.structures import InstanceData
from torch import nn

from instseg.models.test_time_augs import DetTTAModel
from instseg.models.test_time_augs.det_tta import flip_boxes, vote_masks
from instseg.registry import MODELS, TRANSFORMS
from instseg.structures import DetDataSample, PredictedMasks

ROOT = Path(__file__).resolve().parents[2]
H, W = 64, 100
# Two rectangles, left-right asymmetric: label 0 (red), label 1 (yellow).
RECTS = {0: (8, 10, 40, 30), 1: (60, 40, 90, 56)}


def image() -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    x1, y1, x2, y2 = RECTS[0]
    img[y1:y2, x1:x2] = (0, 0, 255)
    x1, y1, x2, y2 = RECTS[1]
    img[y1:y2, x1:x2] = (0, 255, 255)
    return img


class OracleDetector(nn.Module):
    """Finds the bright rectangles of each view and reports them at the original size, as a
    trained detector with ``rescale=True`` would: a detector that is exact up to resampling."""

    def test_step(self, data: dict) -> list[DetDataSample]:
        for img, sample in zip(data['inputs'], data['data_samples'], strict=True):
            bgr = img.permute(1, 2, 0).numpy()
            w_scale, h_scale = sample.metainfo['scale_factor']
            oh, ow = sample.metainfo['ori_shape']
            boxes, labels, masks = [], [], []
            for label, channel in ((0, 1), (1, 1)):
                on = (bgr[..., 2] > 128) & ((bgr[..., channel] > 128) == bool(label))
                ys, xs = np.nonzero(on)
                if len(xs) == 0:
                    continue
                boxes.append([xs.min() / w_scale, ys.min() / h_scale,
                              (xs.max() + 1) / w_scale, (ys.max() + 1) / h_scale])  # fmt: skip
                labels.append(label)
                masks.append(
                    cv2.resize(on.astype(np.uint8), (ow, oh), interpolation=cv2.INTER_NEAREST)
                )
            sample.pred_instances = InstanceData(
                bboxes=torch.tensor(boxes, dtype=torch.float32),
                scores=torch.tensor([0.9, 0.8][: len(boxes)]),
                labels=torch.tensor(labels),
                masks=torch.from_numpy(np.stack(masks)).bool(),
            )
        return list(data['data_samples'])


def tta_batch(scales: list[tuple[int, int]], directions: list[str]) -> dict:
    flips = [dict(type='RandomFlip', prob=1.0, direction=d) for d in directions]
    tta = TRANSFORMS.build(
        dict(
            type='TestTimeAug',
            transforms=[
                [dict(type='Resize', scale=s, keep_ratio=True) for s in scales],
                [*flips, dict(type='RandomFlip', prob=0.0)],
                [dict(type='PackDetInputs', meta_keys=('img_id', 'ori_shape', 'img_shape',
                                                       'scale_factor', 'flip', 'flip_direction'))],
            ],
        )
    )  # fmt: skip
    views = tta(dict(img=image(), img_shape=(H, W), ori_shape=(H, W), img_id=1))
    return pseudo_collate([views])


def test_flipped_and_scaled_views_merge_back_to_the_original() -> None:
    batch = tta_batch([(50, 32), (100, 64), (150, 96)], ['horizontal', 'vertical', 'diagonal'])
    assert len(batch['inputs']) == 12  # 3 scales x (3 flips + none)
    model = DetTTAModel(module=OracleDetector())
    # A flipped view's own boxes are mirrored: merging must undo that.
    raw = model.module.test_step({k: v[0] for k, v in batch.items()})[0]
    assert raw.metainfo['flip_direction'] == 'horizontal'
    assert raw.pred_instances.bboxes[0, 0] > 50
    (merged,) = model.test_step(batch)
    pred = merged.pred_instances
    assert pred.labels.tolist() == [0, 1] and pred.scores.tolist() == pytest.approx([0.9, 0.8])
    np.testing.assert_allclose(pred.bboxes.numpy(), [RECTS[0], RECTS[1]], atol=1.0)
    assert pred.masks.dtype == torch.bool and pred.masks.shape == (2, H, W)
    for k, (x1, y1, x2, y2) in enumerate(RECTS.values()):
        expected = torch.zeros(H, W, dtype=torch.bool)
        expected[y1:y2, x1:x2] = True
        iou = (pred.masks[k] & expected).sum() / (pred.masks[k] | expected).sum()
        assert iou > 0.95
    assert merged.metainfo['flip'] is False and merged.metainfo['ori_shape'] == (H, W)


def view(
    boxes: list,
    scores: list,
    labels: list,
    masks: torch.Tensor,
    flip: str | None,
    compact: bool = False,
) -> DetDataSample:
    sample = DetDataSample(metainfo=dict(ori_shape=(20, 30), flip=flip is not None,
                                         flip_direction=flip, img_id=5))  # fmt: skip
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        scores=torch.tensor(scores, dtype=torch.float32),
        labels=torch.tensor(labels, dtype=torch.long),
        masks=PredictedMasks.from_dense(masks) if compact else masks,
    )
    return sample


def box_mask(x1: int, y1: int, x2: int, y2: int) -> torch.Tensor:
    m = torch.zeros(20, 30, dtype=torch.bool)
    m[y1:y2, x1:x2] = True
    return m


@pytest.mark.parametrize('compact', [False, True], ids=['dense', 'compact'])
def test_merge_rules_pinned(compact: bool) -> None:
    model = DetTTAModel(module=OracleDetector(), tta_cfg=dict(max_per_img=2))
    a = view([[10, 5, 20, 15]], [0.9], [0], box_mask(10, 5, 20, 15)[None], None, compact)
    # Mirrored in a 30 px wide image: [10, 5, 20, 15] -> [10, 5, 20, 15] back; mask shifted by
    # one column after unflipping (columns 11-20); plus a label-1 box only this view sees.
    b = view([[10, 5, 20, 15], [0, 0, 4, 4]], [0.8, 0.3], [0, 1],
             torch.stack([box_mask(9, 5, 19, 15), box_mask(0, 0, 4, 4)]), 'horizontal',
             compact)  # fmt: skip
    c = view([[11, 5, 21, 15], [2, 2, 6, 6]], [0.7, 0.2], [0, 0],
             torch.stack([box_mask(11, 5, 21, 15), box_mask(2, 2, 6, 6)]), None,
             compact)  # fmt: skip
    (merged,) = model.merge_preds([[a, b, c]])
    pred = merged.pred_instances
    # NMS per class keeps a's box; the label-1 box is unflipped to [26, 0, 30, 4]; max_per_img=2
    # leaves out c's small label-0 box (score 0.2).
    assert pred.labels.tolist() == [0, 1] and pred.scores.tolist() == pytest.approx([0.9, 0.3])
    np.testing.assert_allclose(pred.bboxes.numpy(), [[10, 5, 20, 15], [26, 0, 30, 4]])
    # Vote over a, b and c (weights .9, .8, .7 of 2.4): columns 11-19 are in all three; column
    # 10 in a only (0.375), column 20 in b and c (0.625).
    masks = pred.masks.to_tensor() if compact else pred.masks
    assert isinstance(pred.masks, PredictedMasks) == compact
    np.testing.assert_array_equal(masks[0].numpy(), box_mask(11, 5, 21, 15).numpy())
    np.testing.assert_array_equal(masks[1].numpy(), box_mask(26, 0, 30, 4).numpy())
    np.testing.assert_allclose(
        flip_boxes(torch.tensor([[1.0, 2.0, 5.0, 4.0]]), (20, 30), 'diagonal'),
        [[25.0, 16.0, 29.0, 18.0]],
    )
    soft = vote_masks(torch.tensor([[[0.2, 1.0]], [[0.6, 0.0]]]), torch.tensor([1.0, 3.0]),
                      torch.tensor([[True, True]]), binary=False)  # fmt: skip
    np.testing.assert_allclose(soft.numpy(), [[[0.5, 0.25]]])


def test_views_without_detections_or_masks() -> None:
    model = DetTTAModel(module=OracleDetector())
    empty = view([], [], [], torch.zeros(0, 20, 30, dtype=torch.bool), 'vertical')
    (merged,) = model.merge_preds(
        [[empty, view([], [], [], torch.zeros(0, 20, 30, dtype=torch.bool), None)]]
    )
    assert len(merged.pred_instances) == 0 and merged.pred_instances.masks.shape == (0, 20, 30)
    boxes_only = view(
        [[1, 1, 5, 5]], [0.5], [2], torch.zeros(1, 20, 30, dtype=torch.bool), 'vertical'
    )
    del boxes_only.pred_instances.masks
    (merged,) = model.merge_preds([[boxes_only]])
    assert 'masks' not in merged.pred_instances
    np.testing.assert_allclose(merged.pred_instances.bboxes.numpy(), [[1, 15, 5, 19]])
    with pytest.raises(ValueError, match="type='nms'"):
        DetTTAModel(module=OracleDetector(), tta_cfg=dict(nms=dict(type='soft_nms')))


def tiny_mask_rcnn() -> dict:
    cfg = Config.fromfile(ROOT / 'configs' / '_base_' / 'models' / 'mask_rcnn_r50_fpn.py').model
    cfg.backbone.update(depth=18, frozen_stages=-1, norm_eval=False)
    cfg.neck.update(in_channels=None, out_channels=16)
    cfg.rpn_head.update(in_channels=16, feat_channels=16)
    cfg.roi_head.bbox_roi_extractor.out_channels = 16
    cfg.roi_head.mask_roi_extractor.out_channels = 16
    cfg.roi_head.bbox_head.update(in_channels=16, fc_out_channels=32, num_classes=2)
    cfg.roi_head.mask_head.update(num_convs=1, in_channels=16, conv_out_channels=16, num_classes=2)
    cfg.test_cfg.rpn.update(nms_pre=100, max_per_img=50)
    cfg.test_cfg.rcnn.score_thr = 0.0
    return cfg


def test_shipped_tta_config_wraps_a_mask_rcnn() -> None:
    tta = Config.fromfile(ROOT / 'configs' / '_base_' / 'tta.py')
    model = MODELS.build(dict(**tta.tta_model, module=tiny_mask_rcnn()))
    assert isinstance(model, DetTTAModel) and type(model.module).__name__ == 'MaskRCNN'
    model.eval()
    batch = tta_batch([(80, 48), (160, 96)], ['horizontal'])
    with torch.no_grad():
        (merged,) = model.test_step(batch)
    pred = merged.pred_instances
    assert 0 < len(pred) <= 100
    assert isinstance(pred.masks, PredictedMasks) and pred.masks.shape == (len(pred), H, W)
    assert (pred.bboxes[:, 0::2] >= 0).all() and (pred.bboxes[:, 0::2] <= W).all()
    assert (pred.bboxes[:, 1::2] >= 0).all() and (pred.bboxes[:, 1::2] <= H).all()
    assert (pred.scores[:-1] >= pred.scores[1:]).all()
