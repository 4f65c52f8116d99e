"""CascadeRoIHead: stage refinement, loss naming and weighting, score / mask averaging, empty gt;
and the box-head features the cascade configs use (norm_cfg, GIoU on decoded boxes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData
from torchvision.ops import box_iou, generalized_box_iou

from instseg.models.roi_heads import CascadeRoIHead, ConvFCBBoxHead
from instseg.registry import MODELS, TASK_UTILS
from instseg.structures import BitmapMasks, DetDataSample

BASE = 'configs/_base_/models/cascade_mask_rcnn_r50_fpn.py'
STDS = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
C = 8  # feature channels


def head_cfg(num_classes: int = 2, **overrides) -> dict:
    """The shipped cascade roi_head with 8-channel features, 16-d FCs and one mask conv."""
    model = Config.fromfile(BASE).model
    cfg = model.roi_head
    cfg.bbox_roi_extractor.out_channels = C
    cfg.mask_roi_extractor.out_channels = C
    for head in cfg.bbox_head:
        head.update(in_channels=C, fc_out_channels=16, num_classes=num_classes)
    cfg.mask_head.update(num_convs=1, in_channels=C, conv_out_channels=C, num_classes=num_classes)
    cfg.update({'train_cfg': model.train_cfg.rcnn, 'test_cfg': model.test_cfg.rcnn, **overrides})
    return cfg


def build_head(**overrides) -> CascadeRoIHead:
    head = MODELS.build(head_cfg(**overrides))
    head.init_weights()
    return head


def features(size: int = 64) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(1, C, size // s, size // s) for s in (4, 8, 16, 32))


def sample(boxes: list[list[float]], labels: list[int], size: int = 64) -> DetDataSample:
    masks = np.zeros((len(boxes), size, size), dtype=np.uint8)
    for m, (x1, y1, x2, y2) in zip(masks, boxes, strict=True):
        m[int(y1) : int(y2), int(x1) : int(x2)] = 1
    data = DetDataSample(
        metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0))
    )
    data.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.long),
        masks=BitmapMasks(masks, size, size),
    )
    return data


def proposals(boxes: list[list[float]]) -> list[InstanceData]:
    return [InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))]


def jittered(gt: list[float], n: int = 40, seed: int = 1) -> list[list[float]]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.tensor(gt) + torch.randn(n, 4, generator=gen) * 6).tolist()


def set_constant_outputs(head: CascadeRoIHead, logits: list[list[float]], deltas: list) -> None:
    """Make stage i's box head output ``logits[i]`` and ``deltas[i]`` for every RoI."""
    for bbox_head, cls_bias, reg_bias in zip(head.bbox_head, logits, deltas, strict=True):
        with torch.no_grad():
            for fc in (bbox_head.fc_cls, bbox_head.fc_reg):
                fc.weight.zero_()
            bbox_head.fc_cls.bias.copy_(torch.tensor(cls_bias))
            bbox_head.fc_reg.bias.copy_(torch.tensor(reg_bias))


# ----------------------------------------------------------------------------- structure
def test_modules_are_per_stage_with_mmdetection_names() -> None:
    head = build_head()
    names = set(head.state_dict())
    for i in range(3):
        for key in ('fc_cls.weight', 'fc_reg.weight', 'shared_fcs.1.weight'):
            assert f'bbox_head.{i}.{key}' in names
        for key in ('convs.0.conv.weight', 'upsample.weight', 'conv_logits.weight'):
            assert f'mask_head.{i}.{key}' in names
    assert len(head.bbox_roi_extractor) == len(head.mask_roi_extractor) == 3
    assert [h.bbox_coder.stds for h in head.bbox_head] == [tuple(s) for s in STDS]
    assert [a.pos_iou_thr for a in head.bbox_assigner] == [0.5, 0.6, 0.7]
    # class-agnostic regression: 4 deltas per RoI
    assert all(h.fc_reg.out_features == 4 for h in head.bbox_head)


def test_init_weights_reaches_every_stage() -> None:
    head = build_head()
    # ConvFCBBoxHead's default init: fc_reg ~ N(0, 0.001), fc_cls ~ N(0, 0.01)
    for bbox_head in head.bbox_head:
        assert bbox_head.fc_reg.weight.std() < 0.002
        assert 0.005 < bbox_head.fc_cls.weight.std() < 0.015


@pytest.mark.parametrize(
    ('override', 'message'),
    [
        (dict(stage_loss_weights=[1, 0.5]), 'stage_loss_weights'),
        (dict(num_stages=2, stage_loss_weights=[1, 1]), 'bbox_head has 3 entries'),
        (dict(train_cfg=dict(assigner=None, sampler=None)), 'list of 3 dicts'),
    ],
)
def test_inconsistent_config_is_a_clear_error(override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MODELS.build(head_cfg(**override))


def test_num_classes_mismatch_names_the_heads() -> None:
    cfg = head_cfg()
    cfg.mask_head.num_classes = 5
    with pytest.raises(ValueError, match='mask_head.num_classes=5'):
        MODELS.build(cfg)


# ----------------------------------------------------------------------------- training
def test_loss_names_and_stage_weighting() -> None:
    x = features()
    gt = [[8.0, 10.0, 40.0, 44.0], [30.0, 30.0, 60.0, 56.0]]
    data = [sample(gt, [0, 1])]
    props = proposals(jittered(gt[0]) + jittered(gt[1], seed=2))

    def losses(weights: list[float]) -> dict:
        torch.manual_seed(0)
        head = build_head(stage_loss_weights=weights)
        torch.manual_seed(1)  # same sampled RoIs in both runs
        return head.loss(x, props, data)

    plain = losses([1, 1, 1])
    weighted = losses([1, 0.5, 0.25])
    expected = {
        f's{i}.{k}' for i in range(3) for k in ('loss_cls', 'loss_bbox', 'loss_mask', 'acc')
    }
    assert set(weighted) == expected
    for key, value in weighted.items():
        factor = {'s0': 1.0, 's1': 0.5, 's2': 0.25}[key[:2]] if 'loss' in key else 1.0
        assert value.item() == pytest.approx(plain[key].item() * factor, rel=1e-5), key
        assert torch.isfinite(value)
    assert all(
        weighted[f's{i}.loss_bbox'] > 0 and weighted[f's{i}.loss_mask'] > 0 for i in range(3)
    )


def test_stages_do_not_backpropagate_into_earlier_box_heads() -> None:
    head = build_head()
    x = tuple(f.requires_grad_() for f in features())
    gt = [[8.0, 10.0, 40.0, 44.0]]
    losses = head.loss(x, proposals(jittered(gt[0])), [sample(gt, [1])])
    (losses['s1.loss_bbox'] + losses['s1.loss_cls'] + losses['s2.loss_bbox']).backward()
    assert head.bbox_head[0].fc_reg.weight.grad is None  # refined boxes are detached
    assert head.bbox_head[1].fc_reg.weight.grad.abs().sum() > 0
    assert x[0].grad is not None  # later stages still train the shared features


def test_training_refinement_regresses_sampled_rois_and_drops_gt() -> None:
    """Stage 0's sampled RoIs, moved by its regression, are stage 1's proposals (without gts)."""
    head = build_head()
    gt = [[20.0, 20.0, 60.0, 60.0]]
    props = [[10.0, 10.0, 50.0, 50.0], [14.0, 14.0, 54.0, 54.0], [0.0, 0.0, 8.0, 8.0]]
    # stage 0 shifts every RoI by a tenth of its size in x and y (dx = dy = 1.0 x std 0.1)
    set_constant_outputs(head, [[0.0, 0.0, 0.0]] * 3, [[1.0, 1.0, 0.0, 0.0]] * 3)
    seen = []
    head.bbox_roi_extractor[1].register_forward_hook(lambda m, args, out: seen.append(args[1]))
    head.loss(features(), proposals(props), [sample(gt, [0])])
    stage1_rois = seen[0][:, 1:]
    expected = torch.tensor(props) + torch.tensor([4.0, 4.0, 0.8])[:, None]
    # stage 1 sees the gt (added by its sampler) once, plus the three regressed proposals
    assert len(stage1_rois) == 4
    assert torch.allclose(stage1_rois[0], torch.tensor(gt[0]))
    rest = sorted(stage1_rois[1:].tolist())
    assert torch.allclose(torch.tensor(rest), expected[expected[:, 0].argsort()])


def test_refine_bboxes_uses_gt_label_for_positives_and_argmax_for_negatives() -> None:
    head = ConvFCBBoxHead(
        in_channels=C, fc_out_channels=16, num_classes=2, reg_class_agnostic=False
    )
    assigner = TASK_UTILS.build(dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5))
    sampler = TASK_UTILS.build(dict(type='RandomSampler', num=8, pos_fraction=0.5))
    gt = torch.tensor([[20.0, 20.0, 60.0, 60.0]])
    props = torch.tensor([[22.0, 22.0, 62.0, 62.0], [0.0, 0.0, 10.0, 10.0]])
    res = sampler.sample(
        assigner.assign(props, gt, torch.tensor([1])), props, gt, torch.tensor([1])
    )
    rois = torch.cat([torch.zeros(3, 1), res.priors], 1)  # gt, positive proposal, negative
    cls_score = torch.tensor([[0.0, 5.0, 0.0], [0.0, 5.0, 0.0], [5.0, 0.0, 9.0]])
    # class 0 deltas shift by +1 width in x, class 1 deltas by -1 width (dx = +-1 / 0.1)
    bbox_pred = torch.tensor([[10.0, 0, 0, 0, -10.0, 0, 0, 0]]).repeat(3, 1)
    (refined,) = head.refine_bboxes([res], rois, cls_score, bbox_pred, [dict(img_shape=(100, 100))])
    assert not refined.requires_grad
    # the gt row is dropped; the positive moves with class 1 (its gt label), the negative with
    # class 0 (best foreground score; background is ignored), clipped to the image
    expected = torch.tensor([[0.0, 22.0, 22.0, 62.0], [10.0, 0.0, 20.0, 10.0]])
    assert torch.allclose(refined, expected)


def test_empty_ground_truth() -> None:
    head = build_head()
    x = features()
    losses = head.loss(x, proposals(jittered([10.0, 10.0, 40.0, 40.0])), [sample([], [])])
    for i in range(3):
        assert losses[f's{i}.loss_bbox'].item() == 0.0
        assert losses[f's{i}.loss_mask'].item() == 0.0
        assert losses[f's{i}.loss_cls'] > 0
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    # no proposals and no gt at all: zero losses, still one key per stage
    losses = head.loss(x, proposals([]), [sample([], [])])
    assert len(losses) == 12 and all(torch.isfinite(v) for v in losses.values())


# ----------------------------------------------------------------------------- inference
def test_boxes_move_toward_ground_truth_across_stages() -> None:
    """Each stage moves the box half-way to the gt: the input of every stage overlaps more."""
    head = build_head().eval()
    gt = torch.tensor([[20.0, 20.0, 60.0, 60.0]])
    # half of the remaining 10, 5, 2.5 px on a 40 px box, in each stage's own stds
    moves = [5.0, 2.5, 1.25]
    deltas = [[m / 40 / s[0], m / 40 / s[1], 0.0, 0.0] for m, s in zip(moves, STDS, strict=True)]
    set_constant_outputs(head, [[4.0, 0.0, 0.0]] * 3, deltas)
    seen = []
    for extractor in head.bbox_roi_extractor:
        extractor.register_forward_hook(lambda m, args, out: seen.append(args[1][:, 1:]))
    meta = dict(img_shape=(64, 64), ori_shape=(64, 64), scale_factor=(1.0, 1.0))
    (det,) = head.predict_bbox(features(), [meta], [torch.tensor([[10.0, 10.0, 50.0, 50.0]])])
    stage_inputs = torch.cat(seen)
    assert torch.allclose(stage_inputs[:, 0], torch.tensor([10.0, 15.0, 17.5]))
    assert torch.allclose(det.bboxes[0], torch.tensor([18.75, 18.75, 58.75, 58.75]), atol=1e-3)
    ious = box_iou(torch.cat([stage_inputs, det.bboxes[:1]]), gt)[:, 0]
    assert (ious[1:] > ious[:-1]).all() and ious[-1] > 0.88


def test_scores_average_stage_logits_before_softmax() -> None:
    head = build_head().eval()
    logits = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 3.0]]
    set_constant_outputs(head, logits, [[0.0] * 4] * 3)
    head.test_cfg.score_thr = 0.0
    meta = dict(img_shape=(64, 64), ori_shape=(64, 64), scale_factor=(1.0, 1.0))
    (det,) = head.predict_bbox(features(), [meta], [torch.tensor([[10.0, 10.0, 50.0, 50.0]])])
    # mean logits (1, 2/3, 1) -> softmax; scores of the two foreground classes
    mean = [1.0, 2.0 / 3.0, 1.0]
    total = sum(np.exp(v) for v in mean)
    expected = {0: np.exp(1.0) / total, 1: np.exp(2.0 / 3.0) / total}
    assert dict(zip(det.labels.tolist(), det.scores.tolist(), strict=True)) == pytest.approx(
        expected
    )


def test_masks_average_the_stages_probabilities() -> None:
    head = build_head().eval()
    biases = [-3.0, -3.0, 2.0]
    for mask_head, b in zip(head.mask_head, biases, strict=True):
        with torch.no_grad():
            mask_head.conv_logits.weight.zero_()
            mask_head.conv_logits.bias.fill_(b)
    rois = torch.tensor([[0.0, 10.0, 10.0, 40.0, 40.0]])
    probs = head.predict_mask_probs(features(), rois, torch.tensor([1]))
    expected = sum(1 / (1 + np.exp(-b)) for b in biases) / 3  # 0.32: the last stage alone says 0.88
    assert probs.shape == (1, 28, 28)
    assert torch.allclose(probs, torch.full_like(probs, expected))


def test_predict_end_to_end_and_without_proposals() -> None:
    head = build_head().eval()
    head.test_cfg.score_thr = 0.0
    meta = dict(img_shape=(64, 64), ori_shape=(128, 128), scale_factor=(0.5, 0.5))
    data = [DetDataSample(metainfo=meta), DetDataSample(metainfo=meta)]
    props = [InstanceData(bboxes=torch.tensor([[10.0, 10.0, 40.0, 50.0]])), proposals([])[0]]
    x = tuple(torch.cat([f, f]) for f in features())
    with torch.no_grad():
        full, empty = head.predict(x, props, data)
    assert full.masks.shape == (len(full), 128, 128) and len(full) > 0
    assert full.bboxes.max() <= 128
    assert len(empty) == 0 and empty.masks.shape == (0, 128, 128)
    with torch.no_grad():
        (none,) = head.predict(tuple(f[:1] for f in x), props[1:], data[:1])
    assert none.bboxes.shape == (0, 4) and none.masks.shape == (0, 128, 128)


# ----------------------------------------------------------------------------- box heads
def test_shared4conv1fc_head_with_norm_cfg_uses_mmdetection_names() -> None:
    for norm, abbr in ((dict(type='BN'), 'bn'), (dict(type='GN', num_groups=4), 'gn')):
        head = MODELS.build(
            dict(
                type='Shared4Conv1FCBBoxHead',
                in_channels=C,
                conv_out_channels=C,
                fc_out_channels=16,
                num_classes=3,
                norm_cfg=norm,
                conv_cfg=dict(type='Conv2d'),
            )
        )
        head.init_weights()
        names = set(head.state_dict())
        assert {'shared_convs.3.conv.weight', f'shared_convs.3.{abbr}.weight'} <= names
        assert 'shared_convs.0.conv.bias' not in names  # the norm layer carries the bias
        assert 'shared_fcs.0.weight' in names and 'shared_fcs.1.weight' not in names
        cls, reg = head(torch.randn(5, C, 7, 7))
        assert cls.shape == (5, 4) and reg.shape == (5, 12)


def test_giou_loss_on_decoded_boxes() -> None:
    head = ConvFCBBoxHead(
        in_channels=C,
        fc_out_channels=16,
        num_classes=2,
        reg_class_agnostic=True,
        reg_decoded_bbox=True,
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0),
    )
    assigner = TASK_UTILS.build(dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5))
    sampler = TASK_UTILS.build(dict(type='RandomSampler', num=8, pos_fraction=0.5))
    gt = torch.tensor([[20.0, 20.0, 60.0, 60.0]])
    props = torch.tensor([[24.0, 20.0, 64.0, 60.0], [0.0, 0.0, 10.0, 10.0]])
    res = sampler.sample(
        assigner.assign(props, gt, torch.tensor([0])), props, gt, torch.tensor([0])
    )
    rois = torch.cat([torch.zeros(len(res.priors), 1), res.priors], 1)
    labels, _, targets, _ = head.get_targets([res])
    pos = labels < 2
    assert torch.equal(targets[pos], gt.expand(int(pos.sum()), 4))  # gt boxes, not deltas
    losses = head.loss(torch.zeros(len(rois), 3), torch.zeros(len(rois), 4), rois, [res])
    # zero deltas decode to the RoIs themselves: 10 * sum(1 - GIoU(roi, gt)) / #sampled
    giou = generalized_box_iou(rois[pos, 1:], gt)[:, 0]
    assert losses['loss_bbox'].item() == pytest.approx(10 * (1 - giou).sum().item() / len(rois))
    assert losses['loss_bbox'] > 0


def test_box_only_cascade_trains_without_masks() -> None:
    head = build_head(mask_head=None, mask_roi_extractor=None)
    data = sample([[8.0, 10.0, 40.0, 44.0]], [0])
    del data.gt_instances.masks
    losses = head.loss(features(), proposals(jittered([8.0, 10.0, 40.0, 44.0])), [data])
    assert set(losses) == {f's{i}.{k}' for i in range(3) for k in ('loss_cls', 'loss_bbox', 'acc')}
