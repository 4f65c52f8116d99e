"""Losses: values against hand computation or torch.nn.functional, weighting, empties, autocast."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from instseg.models.losses import CrossEntropyLoss, GIoULoss, L1Loss, SmoothL1Loss
from instseg.registry import MODELS

LOG2 = math.log(2.0)


def _logits(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- softmax CE
def test_softmax_ce_matches_functional_and_weights() -> None:
    pred, label = _logits(6, 4), torch.tensor([0, 3, 1, 3, 2, 0])
    per_sample = F.cross_entropy(pred, label, reduction='none')
    loss = CrossEntropyLoss()
    torch.testing.assert_close(loss(pred, label), per_sample.mean())
    w = torch.tensor([1.0, 0, 2, 1, 0, 1])
    torch.testing.assert_close(loss(pred, label, w), (per_sample * w).mean())
    torch.testing.assert_close(loss(pred, label, w, avg_factor=4), (per_sample * w).sum() / 4)
    torch.testing.assert_close(loss(pred, label, reduction_override='sum'), per_sample.sum())
    torch.testing.assert_close(loss(pred, label, reduction_override='none'), per_sample)
    torch.testing.assert_close(
        CrossEntropyLoss(loss_weight=2.0)(pred, label), 2 * per_sample.mean()
    )


def test_softmax_ce_class_weight_and_ignore_index() -> None:
    pred, label = _logits(4, 3, seed=1), torch.tensor([0, 2, 1, 2])
    per_sample = F.cross_entropy(pred, label, reduction='none')
    cw = [1.0, 2.0, 0.5]
    # class weights scale each sample, and the mean still runs over all N samples
    loss = CrossEntropyLoss(class_weight=cw)
    torch.testing.assert_close(loss(pred, label), (per_sample * torch.tensor(cw)[label]).mean())
    assert 'class_weight' not in loss.state_dict()  # checkpoints keep mmdetection's keys
    ignored = torch.tensor([0, -1, 1, -1])
    keep = per_sample[[0, 2]].sum()
    torch.testing.assert_close(CrossEntropyLoss(ignore_index=-1)(pred, ignored), keep / 4)
    non_ignore = CrossEntropyLoss(ignore_index=-1, avg_non_ignore=True)
    torch.testing.assert_close(non_ignore(pred, ignored), keep / 2)


# ----------------------------------------------------------------------------- sigmoid CE
def test_sigmoid_ce_rpn_style_targets() -> None:
    pred, target = _logits(8, seed=2), torch.tensor([1.0, 0, 0, 1, 1, 0, 0, 0])
    per_elem = F.binary_cross_entropy_with_logits(pred, target, reduction='none')
    loss = CrossEntropyLoss(use_sigmoid=True)
    torch.testing.assert_close(loss(pred, target), per_elem.mean())
    w = torch.tensor([1.0, 1, 0, 1, 0, 1, 1, 0])
    torch.testing.assert_close(loss(pred, target, w, avg_factor=5), (per_elem * w).sum() / 5)
    torch.testing.assert_close(loss(pred, target.long()), per_elem.mean())
    # zero logits cost log 2 per element whatever the target
    assert loss(torch.zeros(3), torch.tensor([0.0, 1, 1])).item() == pytest.approx(LOG2)


def test_sigmoid_ce_one_hot_labels_with_background() -> None:
    pred = _logits(4, 3, seed=3)
    labels = torch.tensor([0, 3, 2, 1])  # label 3 == C is background: an all-zero row
    one_hot = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 1, 0]])
    per_elem = F.binary_cross_entropy_with_logits(pred, one_hot, reduction='none')
    loss = CrossEntropyLoss(use_sigmoid=True)
    torch.testing.assert_close(loss(pred, labels), per_elem.mean())
    w = torch.tensor([1.0, 0.5, 0, 2])  # per-sample weight broadcasts over the classes
    torch.testing.assert_close(loss(pred, labels, w), (per_elem * w[:, None]).mean())
    ignored = CrossEntropyLoss(use_sigmoid=True, ignore_index=2, avg_non_ignore=True)
    expected = per_elem[[0, 1, 3]].sum() / 9
    torch.testing.assert_close(ignored(pred, labels), expected)
    cw = CrossEntropyLoss(use_sigmoid=True, class_weight=[1.0, 3.0, 1.0])(pred, labels)
    ref = F.binary_cross_entropy_with_logits(pred, one_hot, pos_weight=torch.tensor([1.0, 3, 1]))
    torch.testing.assert_close(cw, ref)


# ----------------------------------------------------------------------------- mask CE
def test_mask_ce_picks_each_rois_class_channel() -> None:
    pred = _logits(3, 4, 5, 5, seed=4)
    target = (torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(5)) > 0.5).float()
    label = torch.tensor([2, 0, 3])
    expected = F.binary_cross_entropy_with_logits(pred[torch.arange(3), label], target)
    loss = CrossEntropyLoss(use_mask=True)
    torch.testing.assert_close(loss(pred, target, label=label), expected)
    # mmdetection's mask heads pass the labels as the third positional argument
    torch.testing.assert_close(loss(pred, target, label), expected)
    agnostic = F.binary_cross_entropy_with_logits(pred[:, 0], target)
    torch.testing.assert_close(loss(pred[:, :1], target, label=label), agnostic)
    with pytest.raises(ValueError, match='label'):
        loss(pred, target)
    with pytest.raises(ValueError, match='target'):
        loss(pred, target[:, :4], label=label)
    with pytest.raises(ValueError, match='use_mask supports neither'):
        CrossEntropyLoss(use_mask=True, ignore_index=255)


# ----------------------------------------------------------------------------- L1, smooth L1
def test_l1_by_hand() -> None:
    pred, target = torch.tensor([[1.0, -2], [3, 4]]), torch.zeros(2, 2)
    loss = L1Loss()
    assert loss(pred, target).item() == pytest.approx(2.5)
    w = torch.tensor([1.0, 0.0])  # per sample
    assert loss(pred, target, w).item() == pytest.approx(0.75)
    assert loss(pred, target, w, avg_factor=2).item() == pytest.approx(1.5)
    assert loss(pred, target, torch.tensor([[0.0, 1], [1, 0]])).item() == pytest.approx(1.25)
    assert L1Loss(loss_weight=2.0, reduction='sum')(pred, target).item() == pytest.approx(20.0)
    assert loss(pred, target, reduction_override='none').tolist() == [[1.0, 2], [3, 4]]


def test_smooth_l1_by_hand_and_against_functional() -> None:
    # |d| = 0.5 < beta: 0.5 * 0.25 / 1 = 0.125; |d| = 2: 2 - 0.5 = 1.5
    pred, target = torch.tensor([[0.5, 2.0]]), torch.zeros(1, 2)
    assert SmoothL1Loss()(pred, target, reduction_override='none').tolist() == [[0.125, 1.5]]
    p, t = _logits(5, 4, seed=6), _logits(5, 4, seed=7)
    ref = F.smooth_l1_loss(p, t, beta=1 / 9)
    torch.testing.assert_close(SmoothL1Loss(beta=1 / 9)(p, t), ref)
    torch.testing.assert_close(SmoothL1Loss(beta=0.0)(p, t), L1Loss()(p, t))


# ----------------------------------------------------------------------------- GIoU
def test_giou_by_hand() -> None:
    pred = torch.tensor([[0.0, 0, 2, 1], [0, 0, 1, 1], [0, 0, 4, 4]])
    target = torch.tensor([[1.0, 0, 3, 1], [2, 0, 3, 1], [0, 0, 4, 4]])
    # half overlap: IoU 1/3, hull 3 = union -> 1 - 1/3; disjoint: 0 - (3 - 2) / 3 -> 4/3; same: 0
    expected = torch.tensor([2 / 3, 4 / 3, 0.0])
    loss = GIoULoss()
    torch.testing.assert_close(
        loss(pred, target, reduction_override='none'), expected, atol=1e-5, rtol=0
    )
    w = torch.tensor([[1.0] * 4, [0.0] * 4, [1.0] * 4])  # box-head [N, 4] weights average to [N]
    assert loss(pred, target, w, avg_factor=2).item() == pytest.approx(1 / 3, abs=1e-5)


# ----------------------------------------------------------------------------- shared behaviour
LOSS_CASES = [
    (CrossEntropyLoss(), lambda n: (_logits(n, 5), torch.arange(n) % 5)),
    (CrossEntropyLoss(use_sigmoid=True), lambda n: (_logits(n), (torch.arange(n) % 2).float())),
    (CrossEntropyLoss(use_sigmoid=True), lambda n: (_logits(n, 3), torch.arange(n) % 4)),
    (L1Loss(), lambda n: (_logits(n, 4), _logits(n, 4, seed=1))),
    (SmoothL1Loss(beta=1 / 9), lambda n: (_logits(n, 4), _logits(n, 4, seed=1))),
    (
        GIoULoss(),
        lambda n: (
            torch.tensor([[0.0, 0, 4, 4]]).repeat(n, 1),
            torch.tensor([[1.0, 1, 5, 6]]).repeat(n, 1),
        ),
    ),
]
IDS = ['softmax', 'sigmoid', 'sigmoid_onehot', 'l1', 'smooth_l1', 'giou']


@pytest.mark.parametrize(('loss', 'make'), LOSS_CASES, ids=IDS)
@pytest.mark.parametrize('avg_factor', [None, 0])
def test_empty_input_gives_zero_with_grad(loss, make, avg_factor) -> None:
    pred, target = make(0)
    pred.requires_grad_(True)
    out = loss(pred, target, avg_factor=avg_factor)
    assert out.item() == 0.0 and out.grad_fn is not None
    out.backward()
    assert pred.grad is not None and pred.grad.shape == pred.shape


def test_empty_mask_input_gives_zero_with_grad() -> None:
    pred = torch.zeros(0, 2, 7, 7, requires_grad=True)
    out = CrossEntropyLoss(use_mask=True)(pred, torch.zeros(0, 7, 7), label=torch.zeros(0).long())
    assert out.item() == 0.0 and out.grad_fn is not None


@pytest.mark.parametrize(('loss', 'make'), LOSS_CASES, ids=IDS)
def test_bf16_autocast_gives_finite_fp32_loss(loss, make) -> None:
    pred, target = make(6)
    leaf = pred.clone().requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = loss(leaf.bfloat16(), target)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    out.backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


def test_fp16_inputs_give_fp32_losses() -> None:
    pred = torch.full((2, 4), 300.0, dtype=torch.float16)  # squares overflow fp16
    out = SmoothL1Loss(beta=1000.0)(pred, torch.zeros_like(pred), reduction_override='sum')
    assert out.dtype == torch.float32 and out.item() == pytest.approx(8 * 0.5 * 300**2 / 1000)


def test_bad_arguments_raise_clear_errors() -> None:
    pred, target = _logits(3, 4), _logits(3, 4, seed=1)
    with pytest.raises(ValueError, match='reduction must be one of'):
        L1Loss(reduction='avg')
    with pytest.raises(ValueError, match='reduction must be one of'):
        L1Loss()(pred, target, reduction_override='avg')
    with pytest.raises(ValueError, match='avg_factor can not be used'):
        L1Loss(reduction='sum')(pred, target, avg_factor=2)
    with pytest.raises(ValueError, match=r'weight of shape \(2,\) does not fit'):
        L1Loss()(pred, target, torch.ones(2))
    with pytest.raises(ValueError, match='same shape'):
        SmoothL1Loss()(pred, target[:, :2])
    with pytest.raises(ValueError, match='int labels'):
        CrossEntropyLoss()(pred, target)
    with pytest.raises(ValueError, match='sigmoid mode'):
        CrossEntropyLoss(use_sigmoid=True)(pred, torch.zeros(2))


def test_losses_build_from_mask_rcnn_configs() -> None:
    cfgs = [
        dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        dict(type='L1Loss', loss_weight=1.0),
        dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0),
        dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0),
        dict(type='GIoULoss', loss_weight=10.0),
    ]
    built = [MODELS.build(cfg) for cfg in cfgs]
    assert [type(m).__name__ for m in built] == [c['type'] for c in cfgs]
    assert built[3].use_mask and built[5].loss_weight == 10.0
