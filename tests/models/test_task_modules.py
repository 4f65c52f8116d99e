"""Anchors, box coder, IoU, assigner and samplers: hand-computed values for each convention."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import box_iou

from instseg.models.task_modules import (
    AnchorGenerator,
    AssignResult,
    BboxOverlaps2D,
    DeltaXYWHBBoxCoder,
    MaxIoUAssigner,
    PseudoSampler,
    RandomSampler,
    bbox_overlaps,
)
from instseg.registry import TASK_UTILS

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
R2 = math.sqrt(2.0)


def _rpn_anchor_generator() -> AnchorGenerator:
    return AnchorGenerator(strides=[4, 8, 16, 32, 64], ratios=[0.5, 1.0, 2.0], scales=[8])


# ----------------------------------------------------------------------------- anchors
def test_rpn_base_anchors_match_hand_computation() -> None:
    gen = _rpn_anchor_generator()
    assert gen.num_levels == 5
    assert gen.num_base_priors == [3, 3, 3, 3, 3]
    # stride 4, scale 8 -> 32 px; ratio = h / w, width 32 / sqrt(r), height 32 * sqrt(r)
    s = 16.0  # half of 32
    expected = torch.tensor(
        [[-s * R2, -s / R2, s * R2, s / R2], [-s, -s, s, s], [-s / R2, -s * R2, s / R2, s * R2]]
    )
    torch.testing.assert_close(gen.base_anchors[0], expected)
    torch.testing.assert_close(gen.base_anchors[4][1], torch.tensor([-256.0, -256, 256, 256]))


@pytest.mark.parametrize('device', DEVICES)
def test_grid_priors_are_location_major(device: str) -> None:
    gen = _rpn_anchor_generator()
    sizes = [(2, 3), (1, 2), (1, 1), (1, 1), (1, 1)]
    anchors = gen.grid_priors(sizes, dtype=torch.float32, device=device)
    assert [a.shape for a in anchors] == [(18, 4), (6, 4), (3, 4), (3, 4), (3, 4)]
    assert all(a.device.type == device for a in anchors)
    # level 0, location (y=1, x=2), ratio 1 -> index (1 * 3 + 2) * 3 + 1, centre (8, 4)
    torch.testing.assert_close(anchors[0][16].cpu(), torch.tensor([-8.0, -12, 24, 20]))
    # level 1, location (y=0, x=1), ratio 0.5 -> centre (8, 0), 64 px anchor
    torch.testing.assert_close(
        anchors[1][3].cpu(), torch.tensor([8 - 32 * R2, -32 / R2, 8 + 32 * R2, 32 / R2])
    )


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_grid_priors_dtype(dtype: torch.dtype) -> None:
    anchors = _rpn_anchor_generator().grid_priors([(4, 4)] * 5, dtype=dtype)
    assert all(a.dtype == dtype for a in anchors)
    ref = _rpn_anchor_generator().grid_priors([(4, 4)] * 5)
    torch.testing.assert_close(anchors[4].float(), ref[4], rtol=1e-2, atol=1.0)


def test_scale_major_orders_base_anchors() -> None:
    # widths: base 16 * scale / sqrt(ratio)
    kw = dict(strides=[16], ratios=[0.5, 2.0], scales=[1.0, 2.0])
    w = lambda a: (a[:, 2] - a[:, 0]).tolist()
    by_ratio = w(AnchorGenerator(**kw, scale_major=True).base_anchors[0])
    by_scale = w(AnchorGenerator(**kw, scale_major=False).base_anchors[0])
    assert by_ratio == pytest.approx([16 * R2, 32 * R2, 16 / R2, 32 / R2])
    assert by_scale == pytest.approx([16 * R2, 16 / R2, 32 * R2, 32 / R2])


def test_center_offset_octave_scales_and_centers() -> None:
    gen = AnchorGenerator(strides=[8], ratios=[1.0], scales=[1.0], center_offset=0.5)
    anchors = gen.grid_priors([(1, 2)])[0]
    torch.testing.assert_close(anchors, torch.tensor([[0.0, 0, 8, 8], [8, 0, 16, 8]]))
    octave = AnchorGenerator(strides=[8], ratios=[1.0], octave_base_scale=4, scales_per_octave=3)
    assert octave.scales.tolist() == pytest.approx([4, 4 * 2 ** (1 / 3), 4 * 2 ** (2 / 3)])
    centred = AnchorGenerator(strides=[8], ratios=[1.0], scales=[1.0], centers=[(3.0, 5.0)])
    torch.testing.assert_close(centred.base_anchors[0], torch.tensor([[-1.0, 1, 7, 9]]))


def test_anchor_generator_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match='either scales or both'):
        AnchorGenerator(
            strides=[8], ratios=[1.0], scales=[1.0], octave_base_scale=4, scales_per_octave=2
        )
    with pytest.raises(ValueError, match='center_offset'):
        AnchorGenerator(strides=[8], ratios=[1.0], scales=[1.0], center_offset=2.0)
    with pytest.raises(ValueError, match='2 feature map sizes for 5 levels'):
        _rpn_anchor_generator().grid_priors([(2, 2), (1, 1)])


@pytest.mark.parametrize('device', DEVICES)
def test_valid_flags_cover_the_unpadded_extent(device: str) -> None:
    gen = AnchorGenerator(strides=[4, 8], ratios=[0.5, 1.0, 2.0], scales=[8])
    flags = gen.valid_flags([(4, 4), (2, 2)], pad_shape=(10, 6), device=device)
    assert [f.shape for f in flags] == [(48,), (12,)]
    assert flags[0].dtype == torch.bool and flags[0].device.type == device
    # level 0: ceil(10 / 4) = 3 rows, ceil(6 / 4) = 2 columns are valid
    expected0 = torch.zeros(4, 4, 3, dtype=torch.bool)
    expected0[:3, :2] = True
    assert torch.equal(flags[0].cpu(), expected0.reshape(-1))
    # level 1: ceil(10 / 8) = 2 rows, ceil(6 / 8) = 1 column
    expected1 = torch.zeros(2, 2, 3, dtype=torch.bool)
    expected1[:, :1] = True
    assert torch.equal(flags[1].cpu(), expected1.reshape(-1))


# ----------------------------------------------------------------------------- box coder
def _random_boxes(n: int, seed: int = 0, size: float = 200.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2 + 1.0
    return torch.cat([xy, xy + wh], dim=1)


def test_encode_matches_hand_computation() -> None:
    coder = DeltaXYWHBBoxCoder(target_stds=(0.1, 0.1, 0.2, 0.2))
    assert coder.encode_size == 4
    prior = torch.tensor([[0.0, 0, 10, 20]])  # centre (5, 10), size 10 x 20
    gt = torch.tensor([[5.0, 0, 25, 40]])  # centre (15, 20), size 20 x 40
    # raw (1, 0.5, log 2, log 2) divided by the stds
    expected = torch.tensor([[10.0, 5.0, math.log(2) / 0.2, math.log(2) / 0.2]])
    torch.testing.assert_close(coder.encode(prior, gt), expected)
    torch.testing.assert_close(coder.decode(prior, expected), gt)


@pytest.mark.parametrize('device', DEVICES)
def test_round_trip_with_means_and_stds(device: str) -> None:
    coder = DeltaXYWHBBoxCoder((0.1, -0.2, 0.05, 0.0), (0.1, 0.1, 0.2, 0.2))
    priors, gts = _random_boxes(50, 0).to(device), _random_boxes(50, 1).to(device)
    deltas = coder.encode(priors, gts)
    torch.testing.assert_close(coder.decode(priors, deltas), gts, rtol=1e-4, atol=1e-3)


def test_stds_equal_torchvision_weights() -> None:
    coder = DeltaXYWHBBoxCoder(target_stds=(0.1, 0.1, 0.2, 0.2))
    tv = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    priors, gts = _random_boxes(64, 2), _random_boxes(64, 3)
    deltas = coder.encode(priors, gts)
    torch.testing.assert_close(deltas, tv.encode_single(gts, priors), rtol=1e-5, atol=1e-5)
    pred = torch.randn(64, 4, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(coder.decode(priors, pred), tv.decode_single(pred, priors))


def test_decode_class_specific_and_batched() -> None:
    coder = DeltaXYWHBBoxCoder(target_stds=(0.1, 0.1, 0.2, 0.2))
    rois = _random_boxes(5, 5)
    deltas = torch.randn(5, 4 * 3, generator=torch.Generator().manual_seed(6))
    out = coder.decode(rois, deltas)
    assert out.shape == (5, 12)
    for c in range(3):  # every class group decodes against the same RoI
        torch.testing.assert_close(
            out[:, 4 * c : 4 * c + 4], coder.decode(rois, deltas[:, 4 * c : 4 * c + 4])
        )
    batched = coder.decode(rois[None].expand(2, 5, 4), deltas[None].expand(2, 5, 12))
    torch.testing.assert_close(batched[1], out)
    assert coder.decode(rois[:0], deltas[:0]).shape == (0, 12)


def test_decode_clamps_size_and_clips_to_image() -> None:
    coder = DeltaXYWHBBoxCoder()
    roi = torch.tensor([[10.0, 10, 20, 20]])
    # dw = 10 is clamped to log(1000 / 16): width 10 * 62.5
    box = coder.decode(roi, torch.tensor([[0.0, 0, 10, 0]]))
    assert (box[0, 2] - box[0, 0]).item() == pytest.approx(625.0, rel=1e-5)
    clipped = coder.decode(roi, torch.tensor([[0.0, 0, 10, 0]]), max_shape=(30, 40))
    torch.testing.assert_close(clipped, torch.tensor([[0.0, 10, 40, 20]]))
    # per-image (h, w) tensors for batched boxes [B, N, 4]
    rois = torch.tensor([[[0.0, 0, 100, 100]], [[0.0, 0, 100, 100]]])
    shapes = torch.tensor([[50, 60], [80, 30]])
    out = coder.decode(rois, torch.zeros(2, 1, 4), max_shape=shapes)
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0, 60, 50]], [[0.0, 0, 30, 80]]]))
    ctr = DeltaXYWHBBoxCoder(add_ctr_clamp=True, ctr_clamp=32)
    moved = ctr.decode(torch.tensor([[0.0, 0, 100, 100]]), torch.tensor([[1.0, 0, 0, 0]]))
    torch.testing.assert_close(moved, torch.tensor([[32.0, 0, 132, 100]]))


def test_coder_dtypes_degenerate_boxes_and_errors() -> None:
    coder = DeltaXYWHBBoxCoder(target_stds=(0.1, 0.1, 0.2, 0.2))
    rois = torch.tensor([[0.0, 0, 1000, 800]])
    half = coder.decode(rois.half(), torch.zeros(1, 4, dtype=torch.float16))
    assert half.dtype == torch.float16 and torch.equal(half.float(), rois)
    assert coder.decode(rois, torch.zeros(1, 4, dtype=torch.bfloat16)).dtype == torch.float32
    assert coder.encode(rois.bfloat16(), rois.bfloat16()).dtype == torch.bfloat16
    flat_gt = torch.tensor([[10.0, 10, 10, 30]])  # zero width
    assert torch.isfinite(coder.encode(rois, flat_gt)).all()
    with pytest.raises(ValueError, match='same shape'):
        coder.encode(rois, torch.zeros(2, 4))
    with pytest.raises(ValueError, match='4 \\* k'):
        coder.decode(rois, torch.zeros(1, 6))


# ----------------------------------------------------------------------------- IoU
def test_iou_and_iof_by_hand() -> None:
    a = torch.tensor([[0.0, 0, 10, 10]])
    b = torch.tensor([[5.0, 5, 15, 15], [20, 20, 30, 30], [0, 0, 10, 10]])
    calc = BboxOverlaps2D()
    torch.testing.assert_close(calc(a, b), torch.tensor([[25 / 175, 0.0, 1.0]]))
    torch.testing.assert_close(calc(a, b, mode='iof'), torch.tensor([[0.25, 0.0, 1.0]]))
    aligned = calc(b, b.flip(0), is_aligned=True)
    torch.testing.assert_close(aligned, torch.tensor([25 / 175, 1.0, 25 / 175]))
    torch.testing.assert_close(
        calc(b, b.flip(0), mode='iof', is_aligned=True)[1], torch.tensor(1.0)
    )


def test_iou_matches_torchvision_and_handles_edge_cases() -> None:
    a, b = _random_boxes(20, 7), _random_boxes(30, 8)
    torch.testing.assert_close(bbox_overlaps(a, b), box_iou(a, b))
    assert bbox_overlaps(a[:0], b).shape == (0, 30)
    assert bbox_overlaps(a, b[:0], mode='iof').shape == (20, 0)
    assert bbox_overlaps(a[:0], a[:0], is_aligned=True).shape == (0,)
    point = torch.tensor([[5.0, 5, 5, 5]])
    assert bbox_overlaps(point, point).item() == 0.0  # zero area: 0, not NaN
    assert bbox_overlaps(point, point, mode='iof', is_aligned=True).item() == 0.0
    with pytest.raises(ValueError, match='mode must be one of'):
        bbox_overlaps(a, b, mode='giou')


def test_iou_of_large_fp16_boxes_does_not_overflow() -> None:
    # the areas (1e6 px^2) overflow fp16; the result is still exact and fp16
    a = torch.tensor([[0.0, 0, 1000, 1000]], dtype=torch.float16)
    b = torch.tensor([[0.0, 0, 500, 1000]], dtype=torch.float16)
    iou = bbox_overlaps(a, b)
    assert iou.dtype == torch.float16 and iou.item() == 0.5


# ----------------------------------------------------------------------------- assigner
GTS = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
GT_LABELS = torch.tensor([3, 7])
# IoU with its best gt: 1.0 (gt0), 0.5 (gt0), 0.2 (gt0), 0.6 (gt1), 0.0
PRIORS = torch.tensor(
    [[0.0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 2], [20, 20, 30, 26], [50, 50, 60, 60]]
)


def _assigner(**kw) -> MaxIoUAssigner:
    kw = {'pos_iou_thr': 0.7, 'neg_iou_thr': 0.3, 'min_pos_iou': 0.3, **kw}
    return MaxIoUAssigner(**kw)


@pytest.mark.parametrize('device', DEVICES)
def test_assigner_thresholds_and_low_quality_matches(device: str) -> None:
    res = _assigner().assign(PRIORS.to(device), GTS.to(device), GT_LABELS.to(device))
    assert isinstance(res, AssignResult) and res.num_gts == 2 and res.num_preds == 5
    assert res.gt_inds.device.type == device and res.gt_inds.dtype == torch.long
    # prior 3 (IoU 0.6) becomes positive only as gt1's best prior
    assert res.gt_inds.tolist() == [1, -1, 0, 2, 0]
    assert res.labels.tolist() == [3, -1, -1, 7, -1]
    torch.testing.assert_close(res.max_overlaps.cpu(), torch.tensor([1.0, 0.5, 0.2, 0.6, 0.0]))
    plain = _assigner(match_low_quality=False).assign(PRIORS, GTS, GT_LABELS)
    assert plain.gt_inds.tolist() == [1, -1, 0, -1, 0]
    strict = _assigner(min_pos_iou=0.7).assign(PRIORS, GTS, GT_LABELS)
    assert strict.gt_inds.tolist() == [1, -1, 0, -1, 0]
    ranged = _assigner(neg_iou_thr=(0.1, 0.3)).assign(PRIORS, GTS, GT_LABELS)
    assert ranged.gt_inds.tolist() == [1, -1, 0, 2, -1]


def test_low_quality_ties_and_conflicts() -> None:
    tied = torch.cat([PRIORS, torch.tensor([[20.0, 24, 30, 30]])])  # also IoU 0.6 with gt1
    assert _assigner().assign(tied, GTS, GT_LABELS).gt_inds.tolist() == [1, -1, 0, 2, 0, 2]
    one = _assigner(gt_max_assign_all=False).assign(tied, GTS, GT_LABELS)
    assert one.gt_inds.tolist() == [1, -1, 0, 2, 0, -1]
    # two identical gts claim the same best prior: the later gt wins, as in mmdetection
    twins = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    for all_ in (True, False):
        res = _assigner(gt_max_assign_all=all_).assign(PRIORS, twins, torch.tensor([1, 2]))
        assert res.gt_inds[0].item() == 2 and res.labels[0].item() == 2


def _loop_reference(overlaps: torch.Tensor, pos: float, neg: float, min_pos: float, all_: bool):
    """mmdetection's per-gt loop, written out plainly, to check the vectorised assigner."""
    max_ov, argmax_ov = overlaps.max(dim=0)
    gt_max, gt_argmax = overlaps.max(dim=1)
    inds = torch.full((overlaps.shape[1],), -1)
    inds[(max_ov >= 0) & (max_ov < neg)] = 0
    inds[max_ov >= pos] = argmax_ov[max_ov >= pos] + 1
    for i in range(overlaps.shape[0]):
        if gt_max[i] >= min_pos:
            if all_:
                inds[overlaps[i] == gt_max[i]] = i + 1
            else:
                inds[gt_argmax[i]] = i + 1
    return inds


@pytest.mark.parametrize('all_', [True, False])
def test_assigner_matches_the_loop_reference(all_: bool) -> None:
    # integer corners on a coarse grid make many exact IoU ties between gts and priors
    g = torch.Generator().manual_seed(14)
    xy = torch.randint(0, 6, (300, 2), generator=g).float() * 4
    wh = torch.randint(1, 4, (300, 2), generator=g).float() * 4
    boxes = torch.cat([xy, xy + wh], dim=1)
    priors, gts = boxes[:260], boxes[260:]
    labels = torch.arange(40)
    for min_pos in (0.0, 0.3):
        assigner = _assigner(min_pos_iou=min_pos, gt_max_assign_all=all_)
        res = assigner.assign(priors, gts, labels)
        ref = _loop_reference(bbox_overlaps(gts, priors), 0.7, 0.3, min_pos, all_)
        assert torch.equal(res.gt_inds, ref)
        assert torch.equal(res.labels, torch.where(ref > 0, ref - 1, -1))


@pytest.mark.parametrize('all_', [True, False])
def test_assigner_in_chunks_matches_the_whole_matrix(all_: bool) -> None:
    """A crowded image is assigned a few priors at a time, computing only the gts that reach
    into each chunk: the result must equal the rules applied to the whole IoU matrix."""
    g = torch.Generator().manual_seed(3)
    # Priors in anchor order (row by row over a grid, three shapes per cell), gts on a coarse
    # grid (exact ties, twins), one gt beyond every prior and one of zero area.
    cy, cx = torch.meshgrid(torch.arange(0, 96, 8.0), torch.arange(0, 96, 8.0), indexing='ij')
    centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)
    shapes = torch.tensor([[-8.0, -4, 8, 4], [-6, -6, 6, 6], [-4, -8, 4, 8]])
    priors = (centres + shapes).reshape(-1, 4)
    xy = torch.randint(0, 22, (60, 2), generator=g).float() * 4
    gts = torch.cat([xy, xy + torch.randint(1, 5, (60, 2), generator=g).float() * 4], dim=1)
    gts = torch.cat([gts, gts[:3], torch.tensor([[300.0, 300, 320, 320], [40, 40, 40, 52]])])
    labels = torch.arange(len(gts)) % 5
    ignore = torch.tensor([[0.0, 60, 30, 90]])
    for min_pos in (0.3, 0.5):
        assigner = _assigner(min_pos_iou=min_pos, gt_max_assign_all=all_, ignore_iof_thr=0.5)
        assigner.CHUNK_ELEMENTS = 400  # 6 priors per chunk: 72 chunks
        res = assigner.assign(priors, gts, labels, ignore)
        overlaps = bbox_overlaps(gts, priors)
        ignored = bbox_overlaps(priors, ignore, mode='iof').amax(dim=1) > 0.5
        overlaps[:, ignored] = -1.0
        ref = _loop_reference(overlaps, 0.7, 0.3, min_pos, all_)
        ref[ignored] = -1
        assert torch.equal(res.gt_inds, ref)
        assert torch.equal(res.labels, torch.where(ref > 0, labels[ref - 1], -1))
        assert torch.equal(res.max_overlaps, overlaps.max(dim=0).values)
        assert (ref > 0).sum() > 20 and ignored.sum() > 10


def test_ignore_regions() -> None:
    ignore = torch.tensor([[40.0, 40, 70, 70]])  # contains prior 4 entirely
    res = _assigner(ignore_iof_thr=0.5).assign(PRIORS, GTS, GT_LABELS, ignore)
    assert res.gt_inds.tolist() == [1, -1, 0, 2, -1]
    assert res.max_overlaps[4].item() == -1.0
    # over the ignore box's area the overlap is 100 / 900 < 0.5: prior 4 stays negative
    wrt_gt = _assigner(ignore_iof_thr=0.5, ignore_wrt_candidates=False)
    assert wrt_gt.assign(PRIORS, GTS, GT_LABELS, ignore).gt_inds.tolist() == [1, -1, 0, 2, 0]
    assert _assigner().assign(PRIORS, GTS, GT_LABELS, ignore).gt_inds[4].item() == 0  # disabled
    no_gt = _assigner(ignore_iof_thr=0.5).assign(PRIORS, GTS[:0], GT_LABELS[:0], ignore)
    assert no_gt.gt_inds.tolist() == [0, 0, 0, 0, -1]


def test_assigner_empty_inputs_fp16_cpu_fallback_and_errors() -> None:
    res = _assigner().assign(PRIORS, GTS[:0], GT_LABELS[:0])
    assert res.num_gts == 0 and res.gt_inds.tolist() == [0] * 5 and res.labels.tolist() == [-1] * 5
    assert res.max_overlaps.tolist() == [0.0] * 5
    empty = _assigner().assign(PRIORS[:0], GTS, GT_LABELS)
    assert empty.num_preds == 0 and empty.labels.shape == (0,)
    half = _assigner().assign(PRIORS.half(), GTS.half(), GT_LABELS)
    assert half.gt_inds.tolist() == [1, -1, 0, 2, 0] and half.max_overlaps.dtype == torch.float32
    device = DEVICES[-1]
    guarded = _assigner(gpu_assign_thr=1).assign(PRIORS.to(device), GTS.to(device), GT_LABELS)
    assert guarded.gt_inds.device.type == device and guarded.gt_inds.tolist() == [1, -1, 0, 2, 0]
    assert guarded.labels.device.type == device
    with pytest.raises(ValueError, match='2 gt_bboxes but 1 gt_labels'):
        _assigner().assign(PRIORS, GTS, GT_LABELS[:1])
    with pytest.raises(ValueError, match='neg_iou_thr'):
        MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=(0.1, 0.2, 0.3))


def test_add_gt_prepends_self_matches() -> None:
    res = _assigner().assign(PRIORS, GTS, GT_LABELS)
    res.add_gt_(GT_LABELS)
    assert res.gt_inds.tolist() == [1, 2, 1, -1, 0, 2, 0]
    assert res.labels.tolist() == [3, 7, 3, -1, -1, 7, -1]
    assert res.max_overlaps[:2].tolist() == [1.0, 1.0] and res.num_preds == 7


# ----------------------------------------------------------------------------- samplers
def _assign_result(num_pos: int, num_neg: int, num_ignored: int, num_gts: int = 2) -> AssignResult:
    gt_inds = torch.cat(
        [
            torch.arange(num_pos) % num_gts + 1,
            torch.zeros(num_neg, dtype=torch.long),
            torch.full((num_ignored,), -1),
        ]
    )
    labels = torch.where(gt_inds > 0, gt_inds + 10, -1)
    return AssignResult(num_gts, gt_inds, torch.rand(gt_inds.numel()), labels)


@pytest.mark.parametrize('device', DEVICES)
def test_random_sampler_draws_bounded_random_subsets(device: str) -> None:
    ar = _assign_result(10, 20, 5)
    ar = AssignResult(
        ar.num_gts, ar.gt_inds.to(device), ar.max_overlaps.to(device), ar.labels.to(device)
    )
    priors = _random_boxes(35, 9).to(device)
    gts = GTS.to(device)
    sampler = RandomSampler(num=8, pos_fraction=0.25, add_gt_as_proposals=False)
    res = sampler.sample(ar, priors, gts, GT_LABELS.to(device))
    assert res.pos_inds.numel() == 2 and res.neg_inds.numel() == 6
    assert (res.pos_inds < 10).all() and ((res.neg_inds >= 10) & (res.neg_inds < 30)).all()
    assert torch.equal(res.pos_inds, res.pos_inds.sort().values)
    assert torch.equal(res.pos_priors, priors[res.pos_inds])
    assert torch.equal(res.priors, torch.cat([res.pos_priors, res.neg_priors]))
    assert torch.equal(res.pos_gt_bboxes, gts[res.pos_assigned_gt_inds])
    assert torch.equal(res.pos_gt_labels, res.pos_assigned_gt_inds + 11)
    assert res.pos_is_gt.dtype == torch.uint8 and not res.pos_is_gt.any()
    # the draws follow the global seed
    torch.manual_seed(123)
    first = sampler.sample(ar, priors, gts, GT_LABELS.to(device)).neg_inds
    torch.manual_seed(123)
    assert torch.equal(first, sampler.sample(ar, priors, gts, GT_LABELS.to(device)).neg_inds)


def test_random_sampler_fills_with_negatives_and_caps_them() -> None:
    priors = _random_boxes(25, 10)
    ar = _assign_result(1, 20, 4)
    res = RandomSampler(num=8, pos_fraction=0.5, add_gt_as_proposals=False).sample(
        ar, priors, GTS, GT_LABELS
    )
    assert (res.pos_inds.numel(), res.neg_inds.numel()) == (1, 7)
    capped = RandomSampler(num=8, pos_fraction=0.5, neg_pos_ub=2, add_gt_as_proposals=False)
    assert capped.sample(ar, priors, GTS, GT_LABELS).neg_inds.numel() == 2
    no_pos = _assign_result(0, 20, 5)
    assert capped.sample(no_pos, priors, GTS, GT_LABELS).neg_inds.numel() == 2  # ub * max(0, 1)


def test_random_sampler_adds_gts_without_mutating_the_assignment() -> None:
    priors = _random_boxes(6, 11)
    ar = _assign_result(0, 6, 0)
    res = RandomSampler(num=4, pos_fraction=0.5).sample(ar, priors, GTS, GT_LABELS)
    assert ar.num_preds == 6  # the caller's result is untouched
    assert res.all_priors.shape == (8, 4) and torch.equal(res.all_priors[:2], GTS)
    assert res.pos_inds.tolist() == [0, 1] and res.pos_is_gt.tolist() == [1, 1]
    assert res.pos_assigned_gt_inds.tolist() == [0, 1] and res.pos_gt_labels.tolist() == [3, 7]
    assert torch.equal(res.pos_gt_bboxes, GTS) and res.neg_inds.numel() == 2
    assert (res.neg_inds >= 2).all() and res.num_gts == 2


def test_samplers_with_zero_gts() -> None:
    priors = _random_boxes(6, 12)
    res = RandomSampler(num=4, pos_fraction=0.5).sample(
        _assign_result(0, 6, 0), priors, GTS[:0], GT_LABELS[:0]
    )
    assert res.num_gts == 0 and res.pos_inds.numel() == 0 and res.neg_inds.numel() == 4
    assert res.pos_gt_bboxes.shape == (0, 4) and res.priors.shape == (4, 4)
    with pytest.raises(ValueError, match='covers 6 priors, got 5'):
        RandomSampler(num=4, pos_fraction=0.5).sample(
            _assign_result(0, 6, 0), priors[:5], GTS, GT_LABELS
        )


def test_pseudo_sampler_keeps_every_assigned_prior() -> None:
    ar = _assign_result(3, 4, 2)
    res = PseudoSampler().sample(ar, _random_boxes(9, 13), GTS, GT_LABELS)
    assert res.pos_inds.tolist() == [0, 1, 2] and res.neg_inds.tolist() == [3, 4, 5, 6]
    assert res.pos_assigned_gt_inds.tolist() == [0, 1, 0] and res.all_priors.shape == (9, 4)


def test_mask_rcnn_train_cfg_builds_from_the_registry() -> None:
    # The RPN's task utilities exactly as the shipped base config declares them.
    model = Config.fromfile(
        Path(__file__).resolve().parents[2] / 'configs/_base_/models/mask_rcnn_r50_fpn.py'
    ).model
    assigner = TASK_UTILS.build(model.train_cfg.rpn.assigner)
    sampler = TASK_UTILS.build(model.train_cfg.rpn.sampler)
    gen = TASK_UTILS.build(model.rpn_head.anchor_generator)
    coder = TASK_UTILS.build(model.rpn_head.bbox_coder)
    assert isinstance(TASK_UTILS.build(dict(type='PseudoSampler')), PseudoSampler)
    anchors = torch.cat(gen.grid_priors([(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]))
    gts = torch.tensor([[10.0, 12, 40, 50], [30, 5, 60, 25]])
    res = sampler.sample(
        assigner.assign(anchors, gts, torch.tensor([0, 0])), anchors, gts, torch.tensor([0, 0])
    )
    assert res.pos_inds.numel() >= 2 and res.pos_inds.numel() + res.neg_inds.numel() == 256
    assert set(res.pos_assigned_gt_inds.tolist()) == {0, 1}
    decoded = coder.decode(res.pos_priors, coder.encode(res.pos_priors, res.pos_gt_bboxes))
    torch.testing.assert_close(decoded, res.pos_gt_bboxes, rtol=1e-5, atol=1e-4)
