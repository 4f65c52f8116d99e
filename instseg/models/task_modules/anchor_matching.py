"""What anchor heads share: their anchor parts, and anchors matched to one image's ground truth.

``RPNHead`` and ``YOLACTHead`` (and any anchor-based head after them) share this step; what they
do with the positives and negatives (targets, OHEM, losses) stays in the head.
"""

from __future__ import annotations

import torch
from mmengine.config import ConfigDict
from torch import Tensor, nn

from instseg.registry import MODELS, TASK_UTILS
from instseg.structures.det_data_sample import DetDataSample

from .prior_generators import AnchorGenerator
from .samplers import SamplingResult


def grid_anchors(prior_generator: AnchorGenerator, maps: list[Tensor]) -> list[Tensor]:
    """fp32 anchors ``[H_i * W_i * A, 4]`` for the per-level maps ``[B, *, H_i, W_i]``."""
    sizes = [tuple(m.shape[-2:]) for m in maps]
    return prior_generator.grid_priors(sizes, dtype=torch.float32, device=maps[0].device)


def match_anchors(
    head: nn.Module,
    anchors: Tensor,
    featmap_sizes: list[tuple[int, int]],
    sample: DetDataSample,
    allowed_border: float = -1,
) -> tuple[Tensor, Tensor, SamplingResult]:
    """Assign and sample the anchors ``[N, 4]`` (all levels) of one image with the ``head``'s
    ``prior_generator``, ``assigner`` and ``sampler``.

    Anchors whose location lies outside the image's padded extent take no part, nor (with
    ``allowed_border >= 0``) those reaching further than ``allowed_border`` pixels out of
    ``img_shape``. ``ignored_instances`` of the sample are passed to the assigner.
    Returns the positive and negative indices into ``anchors`` and the sampling result
    (whose own indices count only the valid anchors).
    """
    meta = sample.metainfo
    pad_shape = meta.get('pad_shape', meta.get('batch_input_shape', meta['img_shape']))
    valid = torch.cat(
        head.prior_generator.valid_flags(featmap_sizes, pad_shape[:2], anchors.device)
    )
    if allowed_border >= 0:
        h, w = meta['img_shape'][:2]
        valid &= (
            (anchors[:, 0] >= -allowed_border)
            & (anchors[:, 1] >= -allowed_border)
            & (anchors[:, 2] < w + allowed_border)
            & (anchors[:, 3] < h + allowed_border)
        )
    inds = torch.nonzero(valid, as_tuple=True)[0]
    gt = sample.gt_instances
    ignored = sample.get('ignored_instances', None)
    ignore_boxes = ignored.bboxes if ignored is not None and len(ignored) > 0 else None
    assign = head.assigner.assign(anchors[inds], gt.bboxes, gt.labels, ignore_boxes)
    result = head.sampler.sample(assign, anchors[inds], gt.bboxes, gt.labels)
    return inds[result.pos_inds], inds[result.neg_inds], result


def build_anchor_parts(
    head: nn.Module,
    anchor_generator: dict,
    bbox_coder: dict,
    losses: tuple[dict, dict],
    train_cfg: ConfigDict | dict | None,
    test_cfg: ConfigDict | dict | None,
) -> int:
    """Give an anchor head its ``train_cfg``, ``test_cfg``, ``prior_generator``,
    ``bbox_coder``, ``loss_cls`` and ``loss_bbox`` (from ``losses``), and with a ``train_cfg``
    its ``assigner`` and ``sampler``; returns the number of anchors per location."""
    head.train_cfg = train_cfg
    head.test_cfg = test_cfg
    head.prior_generator = TASK_UTILS.build(anchor_generator)
    head.bbox_coder = TASK_UTILS.build(bbox_coder)
    head.loss_cls, head.loss_bbox = (MODELS.build(loss) for loss in losses)
    if train_cfg is not None:
        head.assigner = TASK_UTILS.build(train_cfg['assigner'])
        head.sampler = TASK_UTILS.build(train_cfg['sampler'])
    return head.prior_generator.num_base_priors[0]
