"""Softmax, sigmoid and per-RoI mask cross-entropy (mmdetection's ``CrossEntropyLoss``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from instseg.registry import MODELS

from .utils import WeightedLoss, weight_reduce_loss

_NAME = 'CrossEntropyLoss'
# F.cross_entropy's own default, used when no ignore_index is configured.
_NO_IGNORE = -100


def softmax_cross_entropy(
    pred: Tensor, label: Tensor, class_weight: Tensor | None, ignore_index: int
) -> Tensor:
    """Per-sample softmax cross-entropy ``[N]`` (fp32) of logits ``pred [N, C + 1]`` against int
    ``label [N]``; ``class_weight [C + 1]`` scales each sample by its label's weight, ignored
    labels give 0."""
    if pred.shape[0] != label.shape[0] or label.is_floating_point():
        raise ValueError(
            f'{_NAME}: softmax mode needs int labels [N] for logits [N, C + 1], got '
            f'pred {tuple(pred.shape)} and label {tuple(label.shape)} {label.dtype}'
        )
    return F.cross_entropy(
        pred.float(), label.long(), weight=class_weight, reduction='none', ignore_index=ignore_index
    )


def sigmoid_cross_entropy(
    pred: Tensor, label: Tensor, class_weight: Tensor | None, ignore_index: int
) -> tuple[Tensor, Tensor]:
    """Element-wise sigmoid binary cross-entropy (fp32) of logits ``pred``, with entries whose
    label is negative or ``ignore_index`` set to 0, and the float mask of the kept entries.

    ``label`` has the shape of ``pred`` (targets in [0, 1], e.g. RPN logits ``[N]`` with 0/1
    targets), or is int ``[N]`` for ``pred [N, C]``: class ``c`` becomes a one-hot row and the label
    ``C`` (background) an all-zero row. ``class_weight [C]`` is the positive-class weight of each
    column.
    """
    if pred.ndim == label.ndim + 1 and pred.shape[:-1] == label.shape:
        if label.is_floating_point():
            raise ValueError(
                f'{_NAME}: sigmoid labels {tuple(label.shape)} for pred '
                f'{tuple(pred.shape)} must be int class indices'
            )
        num_classes = pred.shape[-1]
        valid = (label >= 0) & (label != ignore_index)
        # Labels >= C (background) map onto the extra column that is then dropped.
        target = F.one_hot(label.long().clamp(0, num_classes), num_classes + 1)[..., :num_classes]
        valid = valid[..., None].expand_as(target)
    elif pred.shape == label.shape:
        target = label
        valid = (label >= 0) & (label != ignore_index)
    else:
        raise ValueError(
            f'{_NAME}: sigmoid mode needs label of the shape of pred {tuple(pred.shape)}'
            f' or int labels of shape {tuple(pred.shape[:-1])}, got '
            f'{tuple(label.shape)}'
        )
    valid = valid.float()
    loss = F.binary_cross_entropy_with_logits(
        pred.float(), target.float(), reduction='none', pos_weight=class_weight
    )
    return weight_reduce_loss(loss, valid, 'none', None, _NAME), valid


def mask_cross_entropy(pred: Tensor, target: Tensor, label: Tensor | None) -> Tensor:
    """Per-pixel binary cross-entropy ``[N, h, w]`` (fp32) of mask logits ``pred [N, C, h, w]``
    against ``target [N, h, w]``.

    ``label [N]`` picks each RoI's class channel; with ``C == 1`` (class-agnostic masks) channel 0
    is used.
    """
    if pred.ndim != 4 or target.shape != (pred.shape[0], *pred.shape[2:]):
        raise ValueError(
            f'{_NAME}: use_mask needs pred [N, C, h, w] and target [N, h, w], got '
            f'pred {tuple(pred.shape)} and target {tuple(target.shape)}'
        )
    if label is None or label.shape != (pred.shape[0],):
        got = None if label is None else tuple(label.shape)
        raise ValueError(
            f'{_NAME}: use_mask needs label [N] = [{pred.shape[0]}] choosing each '
            f"RoI's mask channel, got {got}"
        )
    if pred.shape[1] == 1:
        pred_slice = pred[:, 0]
    else:
        pred_slice = pred[torch.arange(pred.shape[0], device=pred.device), label.long()]
    return F.binary_cross_entropy_with_logits(pred_slice.float(), target.float(), reduction='none')


@MODELS.register_module()
class CrossEntropyLoss(WeightedLoss):
    """Cross-entropy for classification (softmax or sigmoid) and for mask logits.

    ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None, label=None)``
    returns ``loss_weight`` times the reduced loss, always in fp32:

    - softmax (default): ``pred [N, C + 1]`` logits, ``target [N]`` int labels;
    - ``use_sigmoid``: see :func:`sigmoid_cross_entropy`;
    - ``use_mask``: ``pred [N, C, h, w]``, ``target [N, h, w]``, ``label [N]``, see
      :func:`mask_cross_entropy`. As mmdetection's mask heads pass the labels as the third
      positional argument, an integer ``weight`` is taken as ``label`` when ``label`` is missing.

    Args:
        use_sigmoid: Binary cross-entropy with logits. Defaults to False.
        use_mask: Per-RoI mask cross-entropy. Defaults to False.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``. Defaults to ``'mean'``.
        class_weight: Weight per class (softmax: per label; sigmoid: positive weight per column).
        ignore_index: Label whose entries are ignored (not with ``use_mask``).
        loss_weight: Multiplier of the loss. Defaults to 1.0.
        avg_non_ignore: Average over non-ignored entries only. Defaults to False.
    """

    def __init__(
        self,
        use_sigmoid: bool = False,
        use_mask: bool = False,
        reduction: str = 'mean',
        class_weight: Sequence[float] | None = None,
        ignore_index: int | None = None,
        loss_weight: float = 1.0,
        avg_non_ignore: bool = False,
    ) -> None:
        super().__init__(reduction, loss_weight)
        if use_sigmoid and use_mask:
            raise ValueError(f'{_NAME}: use_sigmoid and use_mask are exclusive')
        if use_mask and (class_weight is not None or ignore_index is not None):
            raise ValueError(f'{_NAME}: use_mask supports neither class_weight nor ignore_index')
        self.use_sigmoid = use_sigmoid
        self.use_mask = use_mask
        self.ignore_index = ignore_index
        self.avg_non_ignore = avg_non_ignore
        # Not persistent: checkpoints keep mmdetection's keys, and the buffer follows .to(device).
        self.register_buffer(
            'class_weight',
            None if class_weight is None else torch.tensor(class_weight, dtype=torch.float32),
            persistent=False,
        )

    def elementwise(
        self, pred: Tensor, target: Tensor, weight: Tensor | None, label: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The unreduced cross-entropy of the configured mode, its weight, and (with
        ``avg_non_ignore``) the number of non-ignored entries as the mean's divisor."""
        ignore_index = _NO_IGNORE if self.ignore_index is None else self.ignore_index
        if self.use_mask:
            if label is None and weight is not None and not weight.is_floating_point():
                label, weight = weight, None
            return mask_cross_entropy(pred, target, label), weight, None
        if self.use_sigmoid:
            loss, valid = sigmoid_cross_entropy(pred, target, self.class_weight, ignore_index)
            return loss, weight, valid.sum() if self.avg_non_ignore else None
        loss = softmax_cross_entropy(pred, target, self.class_weight, ignore_index)
        return loss, weight, (target != ignore_index).sum() if self.avg_non_ignore else None

    def extra_repr(self) -> str:
        return (
            f'use_sigmoid={self.use_sigmoid}, use_mask={self.use_mask}, '
            f'reduction={self.reduction!r}, loss_weight={self.loss_weight}'
        )
