"""YOLACT at the module level: Fast NMS, mask assembly and cropping, losses, predictions, keys."""

from __future__ import annotations

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData
from test_mask_rcnn import make_sample

from instseg.models.dense_heads.yolact_protonet import assemble_masks, crop_masks
from instseg.models.layers import fast_nms
from instseg.registry import MODELS
from instseg.structures import DetDataSample

R50 = 'configs/yolact/yolact_r50_1xb8-55e_coco.py'


def tiny_yolact_cfg(num_classes: int = 3, path: str = R50) -> Config:
    """The shipped config with a ResNet-18, 32 channels and 8 prototypes."""
    cfg = Config.fromfile(path).model
    cfg.backbone.update(depth=18, init_cfg=None)
    cfg.neck.update(in_channels=None, out_channels=32)
    cfg.bbox_head.update(in_channels=32, feat_channels=32, num_classes=num_classes, num_protos=8)
    cfg.mask_head.update(
        in_channels=32,
        num_classes=num_classes,
        num_protos=8,
        proto_channels=(32, None, 32, 8),
        proto_kernel_sizes=(3, -2, 3, 1),
    )
    return cfg


def build_tiny(seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = MODELS.build(tiny_yolact_cfg(**kwargs))
    model.init_weights()
    return model


def two_samples() -> list[DetDataSample]:
    return [
        make_sample(128, 128, [[10, 10, 60, 80], [70, 20, 120, 60]], [0, 2], rle=True),
        make_sample(128, 128, [[30, 40, 100, 110]], [1], rle=False),
    ]


def batch(model, samples, training: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h, w = samples[0].metainfo['img_shape']
    images = [torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=g) for _ in samples]
    return model.data_preprocessor(dict(inputs=images, data_samples=samples), training=training)


# ----------------------------------------------------------------------------- Fast NMS
def _loop_fast_nms(boxes, scores, score_thr, iou_thr, top_k, max_num):
    """Reference: per class, candidate j is dropped when any better-scored candidate among the
    class's top_k overlaps it by IoU > iou_thr (suppressed or not)."""
    from torchvision.ops import box_iou

    out = []
    for c in range(scores.size(1)):
        order = scores[:, c].argsort(descending=True)[:top_k].tolist()
        for rank, j in enumerate(order):
            above = order[:rank]
            if above and box_iou(boxes[j : j + 1], boxes[above]).max() > iou_thr:
                continue
            if scores[j, c] > score_thr:
                out.append((float(scores[j, c]), c, j))
    out.sort(key=lambda t: -t[0])
    return out[:max_num] if max_num > 0 else out


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_fast_nms_matches_loop_reference(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(60, 2, generator=g) * 80
    wh = torch.rand(60, 2, generator=g) * 40 + 4
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(60, 4, generator=g)
    got_scores, got_labels, got_inds = fast_nms(boxes, scores, 0.3, 0.4, top_k=25, max_num=30)
    want = _loop_fast_nms(boxes, scores, 0.3, 0.4, 25, 30)
    assert len(want) > 5
    got = list(zip(got_scores.tolist(), got_labels.tolist(), got_inds.tolist(), strict=True))
    assert [(c, j) for _, c, j in got] == [(c, j) for _, c, j in want]
    torch.testing.assert_close(got_scores, torch.tensor([s for s, _, _ in want]))


def test_fast_nms_lets_suppressed_boxes_suppress() -> None:
    # A overlaps B, B overlaps C, A and C are apart: greedy NMS keeps A and C, Fast NMS only A.
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]])
    scores = torch.tensor([[0.9], [0.8], [0.7]])
    s, labels, inds = fast_nms(boxes, scores, score_thr=0.05, iou_thr=0.3, top_k=10)
    assert inds.tolist() == [0] and labels.tolist() == [0]


def test_fast_nms_is_class_wise_and_empty_safe() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10]])
    scores = torch.tensor([[0.9, 0.1], [0.1, 0.8]])
    s, labels, inds = fast_nms(boxes, scores, 0.05, 0.5, top_k=10)
    # Each class keeps its best box; the same box may survive in two classes.
    assert sorted(zip(labels.tolist(), inds.tolist(), strict=True)) == [(0, 0), (1, 1)]
    s, labels, inds = fast_nms(torch.zeros(0, 4), torch.zeros(0, 3), 0.05, 0.5, top_k=10)
    assert s.shape == labels.shape == inds.shape == (0,)


# ----------------------------------------------------------------------------- masks
def test_assemble_and_crop_hand_made_prototypes() -> None:
    protos = torch.zeros(2, 8, 8)
    protos[0, :, :4] = 10.0  # left half
    protos[1, :4, :] = 10.0  # top half
    coeffs = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    probs = assemble_masks(protos, coeffs)
    assert probs.shape == (3, 8, 8)
    torch.testing.assert_close(probs[0, 0, 0], torch.sigmoid(torch.tensor(10.0)))
    torch.testing.assert_close(probs[0, 0, 7], torch.tensor(0.5))
    torch.testing.assert_close(probs[1, 0, 0], torch.sigmoid(torch.tensor(20.0)))
    torch.testing.assert_close(probs[2, 0, 0], torch.sigmoid(torch.tensor(-10.0)))
    boxes = torch.tensor([[2.0, 1.0, 5.0, 3.0]] * 3)
    cropped = crop_masks(probs, boxes, padding=1.0)
    keep = torch.zeros(8, 8, dtype=torch.bool)
    keep[0:4, 1:6] = True  # rows [1 - 1, 3 + 1), cols [2 - 1, 5 + 1)
    assert (cropped[:, ~keep] == 0).all()
    torch.testing.assert_close(cropped[:, keep], probs[:, keep])
    # No padding, a box past the border: clipped to the map.
    cropped = crop_masks(probs[:1], torch.tensor([[6.0, 6.0, 20.0, 20.0]]), padding=0.0)
    assert cropped[0, 6:, 6:].equal(probs[0, 6:, 6:]) and cropped[0, :6].abs().sum() == 0


def test_predicted_masks_follow_prototypes_to_the_original_image() -> None:
    model = build_tiny()
    model.eval()
    head = model.mask_head
    # Hand-made prototypes on a 16x16 map covering a 64x64 input; image 64x64 scaled 2x from
    # a 32x32 original.
    protos = torch.full((1, 8, 16, 16), -10.0)
    protos[0, 0, 4:12, 4:8] = 10.0  # input pixels x 16..32, y 16..48
    results = [
        InstanceData(
            bboxes=torch.tensor([[0.0, 0.0, 64.0, 64.0], [16.0, 16.0, 24.0, 48.0]]),
            scores=torch.tensor([0.9, 0.8]),
            labels=torch.tensor([0, 1]),
            coeffs=torch.tensor([[1.0] + [0.0] * 7, [1.0] + [0.0] * 7]),
        )
    ]
    meta = dict(
        img_shape=(64, 64),
        ori_shape=(32, 32),
        scale_factor=(2.0, 2.0),
        batch_input_shape=(64, 64),
    )
    sample = DetDataSample(metainfo=meta)
    head.protonet = torch.nn.Identity()  # the map itself is the prototype tensor
    out = head.predict((protos,), results, [sample], rescale=True)[0]
    assert out.masks.shape == (2, 32, 32) and out.masks.dtype == torch.bool
    want = torch.zeros(32, 32, dtype=torch.bool)
    want[8:24, 8:16] = True
    assert out.masks[0].equal(want)
    # The second box (input x 16..24, padded by one prototype pixel = 4 input px) cuts the
    # mask at original x 12 (input 24 + 4 = 28 -> 14, rounded to the prototype grid: 7 -> 14).
    assert out.masks[1][:, 14:].sum() == 0 and out.masks[1][8:24, 8:14].all()
    torch.testing.assert_close(out.bboxes[1], torch.tensor([8.0, 8.0, 12.0, 24.0]))
    out = head.predict((protos,), results, [sample], rescale=False)[0]
    # 16 x 32 input pixels, less the four corners where the bilinear step falls below 0.5.
    assert out.masks.shape == (2, 64, 64) and out.masks[0].sum() == 16 * 32 - 4


# ----------------------------------------------------------------------------- losses
# Measured once with this code (seed 0, ResNet-18, 32 channels, 8 prototypes, the two samples);
# any change in assignment, OHEM, normalisation or targets moves them.
PINNED = {'loss_cls': 10.7347, 'loss_bbox': 5.3308, 'loss_mask': 5.8883, 'loss_segm': 2.7488}


def test_losses_pinned_under_a_seed() -> None:
    model = build_tiny(seed=0)
    model.train()
    torch.manual_seed(0)
    losses = model(**batch(model, two_samples(), training=True), mode='loss')
    got = {k: round(float(v), 4) for k, v in losses.items()}
    assert set(got) == set(PINNED)
    for key, value in PINNED.items():
        assert got[key] == pytest.approx(value, rel=1e-3), got


def test_losses_backward_reaches_every_head_parameter() -> None:
    model = build_tiny()
    model.train()
    losses = model(**batch(model, two_samples(), training=True), mode='loss')
    assert all(torch.isfinite(v) and v > 0 for v in losses.values()), losses
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        if name.startswith(('bbox_head', 'mask_head')):
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_empty_ground_truth() -> None:
    model = build_tiny()
    model.train()
    samples = [make_sample(128, 128, [], [], rle=True), make_sample(128, 128, [], [], rle=False)]
    losses = model(**batch(model, samples, training=True), mode='loss')
    assert losses['loss_bbox'] == 0 and losses['loss_mask'] == 0
    # Negatives and the all-background semantic map still teach something.
    assert losses['loss_cls'] > 0 and losses['loss_segm'] > 0
    sum(losses.values()).backward()
    assert model.bbox_head.conv_cls.weight.grad.abs().sum() > 0


def test_ohem_keeps_three_negatives_per_positive() -> None:
    model = build_tiny()
    model.train()
    head = model.bbox_head
    samples = two_samples()[:1]
    data = batch(model, samples, training=True)
    x = model.extract_feat(data['inputs'])
    cls, reg, coeff = head(x)
    # Make every negative equally hard: the loss is then (P pos + 3P neg) losses / P.
    cls = [torch.zeros_like(c) for c in cls]
    losses, infos = head.loss_by_feat(cls, reg, coeff, data['data_samples'])
    num_pos = len(infos[0])
    assert num_pos > 0
    per_anchor = torch.log(torch.tensor(float(head.num_classes + 1)))  # CE of uniform logits
    torch.testing.assert_close(losses['loss_cls'], per_anchor * (num_pos + 3 * num_pos) / num_pos)


def test_mask_loss_is_normalised_by_box_area() -> None:
    """The same per-pixel error inside a 4x smaller box gives a 4x larger loss."""
    model = build_tiny()
    head = model.mask_head
    head.segm_branch = None
    head.protonet = torch.nn.Identity()
    protos = torch.zeros(1, 8, 32, 32)  # every assembled probability is 0.5
    losses = []
    for box in ([0.0, 0.0, 64.0, 64.0], [0.0, 0.0, 32.0, 32.0]):
        sample = make_sample(128, 128, [box], [0], rle=True)
        sample.set_metainfo(dict(batch_input_shape=(128, 128)))
        info = InstanceData(
            coeffs=torch.zeros(1, 8),
            bboxes=torch.tensor([box]),
            labels=torch.tensor([0]),
            pos_assigned_gt_inds=torch.tensor([0]),
        )
        losses.append(head.loss((protos,), [sample], [info])['loss_mask'])
    # BCE(0.5) inside the box grown by one 4 px prototype pixel, 0 outside (target 0, p 0):
    # mean over the map / (box area / image area).
    ln2 = torch.log(torch.tensor(2.0))
    for loss, side in zip(losses, (16, 8), strict=True):
        inside = (side + 1) ** 2 / 32**2
        expected = ln2 * inside / (side * side / 32**2) * head.loss_mask_weight
        torch.testing.assert_close(loss, expected)


def test_loss_under_cpu_autocast() -> None:
    model = build_tiny()
    model.train()
    data = batch(model, two_samples(), training=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model(**data, mode='loss')
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


# ----------------------------------------------------------------------------- predictions
def test_predict_returns_instances_at_the_original_size() -> None:
    model = build_tiny()
    model.eval()
    samples = two_samples()
    for s in samples:
        s.set_metainfo(dict(ori_shape=(64, 100), scale_factor=(128 / 100, 2.0)))
    with torch.no_grad():
        out = model(**batch(model, samples, training=False), mode='predict')
    for sample in out:
        pred = sample.pred_instances
        n = len(pred)
        assert 0 < n <= model.test_cfg['max_per_img']
        assert pred.masks.shape == (n, 64, 100) and pred.masks.dtype == torch.bool
        assert pred.bboxes.shape == (n, 4) and pred.labels.max() < 3
        assert (pred.bboxes[:, 2] <= 100).all() and (pred.bboxes[:, 3] <= 64).all()
        assert (pred.scores[:-1] >= pred.scores[1:]).all() and (pred.scores > 0.05).all()
        assert 'coeffs' not in pred


def test_state_dict_has_mmdetection_keys() -> None:
    """mmdetection 3.x's YOLACT R50 checkpoint keys and shapes outside backbone and neck."""
    cfg = Config.fromfile(R50).model
    model = MODELS.build(cfg)
    got = {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if k.startswith(('bbox_head.', 'mask_head.'))
    }
    want = {
        'bbox_head.head_convs.0.conv.weight': (256, 256, 3, 3),
        'bbox_head.head_convs.0.conv.bias': (256,),
        'bbox_head.conv_cls.weight': (243, 256, 3, 3),
        'bbox_head.conv_cls.bias': (243,),
        'bbox_head.conv_reg.weight': (12, 256, 3, 3),
        'bbox_head.conv_reg.bias': (12,),
        'bbox_head.conv_coeff.weight': (96, 256, 3, 3),
        'bbox_head.conv_coeff.bias': (96,),
        'mask_head.segm_branch.segm_conv.weight': (80, 256, 1, 1),
        'mask_head.segm_branch.segm_conv.bias': (80,),
    }
    for i, c_out, k in ((0, 256, 3), (2, 256, 3), (4, 256, 3), (8, 256, 3), (10, 32, 1)):
        want[f'mask_head.protonet.{i}.weight'] = (c_out, 256, k, k)
        want[f'mask_head.protonet.{i}.bias'] = (c_out,)
    assert got == want
    assert 'neck.fpn_convs.3.conv.weight' in model.state_dict()  # P6 on the C5 input
    assert model.state_dict()['neck.fpn_convs.3.conv.weight'].shape == (256, 2048, 3, 3)


def test_num_classes_must_agree() -> None:
    cfg = tiny_yolact_cfg()
    cfg.mask_head.num_classes = 5
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(cfg)


def test_unknown_test_cfg_key_is_an_error() -> None:
    cfg = tiny_yolact_cfg()
    cfg.test_cfg.nms_thr = 0.5
    with pytest.raises(ValueError, match='nms_thr'):
        MODELS.build(cfg)


def test_tta_merges_flipped_views_of_yolact() -> None:
    from test_tta import H, W, tta_batch

    tta = Config.fromfile(R50)
    assert [t.type for t in tta.tta_pipeline[1].transforms[0]] == ['Resize']
    model = MODELS.build(dict(**tta.tta_model, module=build_tiny()))
    model.eval()
    with torch.no_grad():
        (merged,) = model.test_step(tta_batch([(W, H), (2 * W, 2 * H)], ['horizontal']))
    pred = merged.pred_instances
    assert 0 < len(pred) <= 100 and pred.masks.shape == (len(pred), H, W)
    assert (pred.bboxes[:, 0::2] <= W).all() and (pred.bboxes[:, 1::2] <= H).all()
