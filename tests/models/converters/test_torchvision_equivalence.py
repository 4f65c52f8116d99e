"""instseg's Mask R-CNN, configured as torchvision's and loaded from torchvision's weights, gives
torchvision's outputs on a real COCO image.

Both models run once in eval mode on ``coco_tiny/val2017/000000404484.jpg``. The
image is 240 x 320 px: torchvision with ``min_size=240, max_size=320`` resizes it by exactly 1
(an identity), and its padded size 256 x 320 is a multiple of 64 in both directions, so
torchvision's anchor strides (padded size // feature size) are exactly 4..64 on every level.

Randomly initialised weights would give uniform class scores below the 0.05 threshold and thus no
detections, so the torchvision model is made to produce a meaningful spread of outputs first:
its BatchNorm statistics are those of this image (one training-mode pass) with random affine
parameters, and its classifier, box regressor and objectness layers get larger random weights.
The comparison then covers every stage: FPN features, the 1000 RPN proposals, the 100 final
boxes, labels and scores (spread over many classes, scores 0.05-0.6) and the masks, both the
28 x 28 probabilities and the pasted binary masks. Tolerances (fp32, same machine): features
within 1e-4 of their range; boxes 0.01 px; scores 1e-4; mask probabilities 1e-3; pasted masks
differ in at most 0.1 % of their pixels (probabilities within 1e-3 of the 0.5 threshold).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mmcv
import numpy as np
import torch
import torchvision
from mmengine.config import Config
from torchvision.ops import box_iou

from instseg.checkpoint.load import load_detector_weights
from instseg.registry import MODELS
from instseg.structures.det_data_sample import DetDataSample

CONFIG = Path(__file__).resolve().parents[3] / 'configs' / 'mask_rcnn'
IMAGE = 'val2017/000000404484.jpg'  # 240 x 320
NUM_CLASSES = 90  # torchvision's 91 outputs minus background; all kept


def _make_outputs_meaningful(tv: torch.nn.Module, rgb: torch.Tensor) -> None:
    """BatchNorm statistics from ``rgb`` with random affine parameters; larger head weights."""
    with torch.no_grad():
        for module in tv.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # a cumulative average: exactly this image's statistics
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
        tv.train()
        images, _ = tv.transform([rgb])
        tv.backbone(images.tensors)
        tv.eval()
        predictor = tv.roi_heads.box_predictor
        predictor.cls_score.weight.normal_(0.0, 0.05)
        predictor.cls_score.bias.normal_(0.0, 1.0)
        predictor.bbox_pred.weight.normal_(0.0, 0.01)
        tv.rpn.head.cls_logits.weight.normal_(0.0, 0.05)


def _record(module: torch.nn.Module, store: dict, name: str) -> None:
    module.register_forward_hook(lambda mod, args, out: store.__setitem__(name, out))


def test_mask_rcnn_matches_torchvision_on_a_real_image(coco_tiny: Path) -> None:
    # One test, checked stage by stage: separate tests could land on different xdist workers and
    # pay for both R50 models twice.
    runs = _run_both(str(coco_tiny / IMAGE))
    _check_loading(runs)
    _check_fpn_features(runs)
    _check_rpn_proposals(runs)
    _check_boxes_labels_scores(runs)
    _check_masks(runs)


def _run_both(image: str) -> dict:
    """Both models on ``image``: their outputs, recorded stage by stage."""
    torch.manual_seed(0)
    bgr = mmcv.imread(image)
    height, width = bgr.shape[:2]
    rgb = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1).float() / 255

    tv = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=height, max_size=width
    )
    _make_outputs_meaningful(tv, rgb)
    cfg = Config.fromfile(CONFIG / 'mask_rcnn_r50_fpn_torchvision.py')
    cfg.model.roi_head.bbox_head.num_classes = NUM_CLASSES
    cfg.model.roi_head.mask_head.num_classes = NUM_CLASSES
    ours = MODELS.build(cfg.model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'maskrcnn_resnet50_fpn.pth'
        torch.save(tv.state_dict(), path)
        _, report = load_detector_weights(ours, str(path))
    ours.eval()

    tv_out, our_out = {}, {}
    _record(tv.backbone, tv_out, 'features')
    _record(tv.rpn, tv_out, 'rpn')
    _record(tv.roi_heads.mask_predictor, tv_out, 'mask_logits')
    _record(ours.neck, our_out, 'features')
    # our predictions compute only each detection's own mask channel: record those probabilities
    head, predict_probs = ours.roi_head.mask_head, ours.roi_head.mask_head.predict_probs
    head.predict_probs = lambda feats, labels: our_out.setdefault(
        'mask_probs', predict_probs(feats, labels)
    )
    sample = DetDataSample(
        metainfo=dict(img_shape=(height, width), ori_shape=(height, width), scale_factor=(1.0, 1.0))
    )
    inputs = torch.from_numpy(bgr).permute(2, 0, 1).contiguous()  # uint8 BGR, as the pipeline
    with torch.no_grad():
        tv_out['detections'] = tv([rgb])[0]
        (result,) = ours.test_step(dict(inputs=[inputs], data_samples=[sample]))
        our_out['detections'] = result.pred_instances
        our_out['proposals'] = ours.rpn_head.predict(our_out['features'], [result])[0]
    return dict(report=report, tv=tv_out, ours=our_out, shape=(height, width))


def _match(tv_det: dict, our_det) -> list[tuple[int, int]]:
    """(torchvision index, our index) pairs of the same label with IoU > 0.999."""
    iou = box_iou(tv_det['boxes'], our_det.bboxes)
    same_label = tv_det['labels'][:, None] == our_det.labels[None, :] + 1  # background first
    best, idx = torch.where(same_label, iou, torch.zeros_like(iou)).max(dim=1)
    return [(i, int(j)) for i, (b, j) in enumerate(zip(best, idx, strict=True)) if b > 0.999]


def _check_loading(runs: dict) -> None:
    report = runs['report']
    assert report.format == 'torchvision'
    assert (report.missing, report.unexpected, report.reinitialized) == ([], [], [])


def _check_fpn_features(runs: dict) -> None:
    tv_feats = list(runs['tv']['features'].values())
    ours = runs['ours']['features']
    assert len(ours) == len(tv_feats) == 5
    for level, (a, b) in enumerate(zip(ours, tv_feats, strict=True)):
        assert a.shape == b.shape, level
        assert (a - b).abs().max() <= 1e-4 * b.abs().max(), level


def _check_rpn_proposals(runs: dict) -> None:
    tv_boxes = runs['tv']['rpn'][0][0]
    ours = runs['ours']['proposals'].bboxes
    assert ours.shape == tv_boxes.shape == (1000, 4)
    # Sorted by score in both; proposals with near-equal scores may swap places further down.
    torch.testing.assert_close(ours[:100], tv_boxes[:100], atol=0.01, rtol=0)
    best = box_iou(tv_boxes, ours).max(dim=1).values
    assert (best > 0.999).float().mean() >= 0.995


def _check_boxes_labels_scores(runs: dict) -> None:
    tv_det, ours = runs['tv']['detections'], runs['ours']['detections']
    assert len(ours) == len(tv_det['boxes']) == 100
    assert len(set(ours.labels.tolist())) >= 10  # a real spread of classes, not one
    assert tv_det['scores'][0] > 0.5
    torch.testing.assert_close(ours.bboxes[:20], tv_det['boxes'][:20], atol=0.01, rtol=0)
    assert torch.equal(ours.labels[:20] + 1, tv_det['labels'][:20])
    pairs = _match(tv_det, ours)
    assert len(pairs) >= 98
    tv_idx, our_idx = map(list, zip(*pairs, strict=True))
    torch.testing.assert_close(ours.scores[our_idx], tv_det['scores'][tv_idx], atol=1e-4, rtol=0)
    torch.testing.assert_close(ours.bboxes[our_idx], tv_det['boxes'][tv_idx], atol=0.01, rtol=0)


def _check_masks(runs: dict) -> None:
    tv_det, ours = runs['tv']['detections'], runs['ours']['detections']
    pairs = _match(tv_det, ours)
    tv_idx, our_idx = map(list, zip(*pairs, strict=True))
    tv_probs = runs['tv']['mask_logits'].sigmoid()[torch.arange(100), tv_det['labels']]
    our_probs = runs['ours']['mask_probs']
    torch.testing.assert_close(our_probs[our_idx], tv_probs[tv_idx], atol=1e-3, rtol=0)

    # torchvision returns soft masks pasted its own way; users threshold them at 0.5.
    tv_masks = tv_det['masks'][tv_idx, 0] >= 0.5
    # the torchvision config pastes as torchvision does (test_cfg.rcnn.mask_paste)
    pasted = ours.masks[our_idx].to_tensor()
    assert pasted.shape == tv_masks.shape
    assert tv_masks.sum() > 10_000  # the masks are not empty
    assert (pasted != tv_masks).sum() <= 1e-3 * tv_masks.sum()
