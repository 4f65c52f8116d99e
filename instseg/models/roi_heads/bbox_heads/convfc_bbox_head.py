"""Box classification and regression head on pooled RoI features (mmdetection's ConvFCBBoxHead)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn
from torchvision.ops import batched_nms

from instseg.models.layers import ConvModule
from instseg.models.task_modules import SamplingResult
from instseg.registry import MODELS, TASK_UTILS

_DEFAULT_CODER = dict(
    type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0], target_stds=[0.1, 0.1, 0.2, 0.2]
)


@MODELS.register_module()
class ConvFCBBoxHead(BaseModule):
    """Shared convs, shared FCs, then ``fc_cls`` and ``fc_reg``. [K, C, 7, 7] -> scores, deltas.

    ``fc_cls`` outputs ``num_classes + 1`` logits; the last index is background (mmdetection's
    convention; torchvision puts background at 0, see the converters). ``fc_reg`` outputs 4
    deltas per class, or 4 in total when ``reg_class_agnostic``. With ``reg_decoded_bbox`` the
    regression loss is computed on decoded boxes (for IoU-type losses such as ``GIoULoss``).
    ``conv_cfg`` and ``norm_cfg`` go to every shared conv (``shared_convs.{i}.conv`` / ``.bn`` /
    ``.gn``, as in mmdetection), which get Kaiming init like mmcv's ``ConvModule``.
    ``bbox_coder``, ``loss_cls`` and ``loss_bbox`` default to mmdetection's: DeltaXYWHBBoxCoder
    with stds (0.1, 0.1, 0.2, 0.2), softmax cross-entropy and L1.
    """

    def __init__(
        self,
        num_shared_convs: int = 0,
        num_shared_fcs: int = 2,
        conv_out_channels: int = 256,
        fc_out_channels: int = 1024,
        in_channels: int = 256,
        roi_feat_size: int = 7,
        num_classes: int = 80,
        bbox_coder: dict | None = None,
        reg_class_agnostic: bool = False,
        reg_decoded_bbox: bool = False,
        conv_cfg: dict | None = None,
        norm_cfg: dict | None = None,
        loss_cls: dict | None = None,
        loss_bbox: dict | None = None,
        init_cfg: dict | list | None = None,
    ) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='Normal', std=0.01, override=dict(name='fc_cls')),
                dict(type='Normal', std=0.001, override=dict(name='fc_reg')),
                dict(type='Xavier', distribution='uniform', override=dict(name='shared_fcs')),
            ]
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.reg_class_agnostic = reg_class_agnostic
        self.reg_decoded_bbox = reg_decoded_bbox
        self.bbox_coder = TASK_UTILS.build(bbox_coder or _DEFAULT_CODER)
        self.loss_cls = MODELS.build(loss_cls or dict(type='CrossEntropyLoss', use_sigmoid=False))
        self.loss_bbox = MODELS.build(loss_bbox or dict(type='L1Loss', loss_weight=1.0))

        self.shared_convs = nn.ModuleList(
            ConvModule(
                in_channels if i == 0 else conv_out_channels,
                conv_out_channels,
                3,
                padding=1,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
            )
            for i in range(num_shared_convs)
        )
        channels = conv_out_channels if num_shared_convs else in_channels
        flat = channels * roi_feat_size * roi_feat_size
        self.shared_fcs = nn.ModuleList(
            nn.Linear(flat if i == 0 else fc_out_channels, fc_out_channels)
            for i in range(num_shared_fcs)
        )
        last = fc_out_channels if num_shared_fcs else flat
        self.fc_cls = nn.Linear(last, num_classes + 1)
        self.fc_reg = nn.Linear(last, 4 if reg_class_agnostic else 4 * num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """RoI features [K, C, S, S] -> (cls_score [K, num_classes + 1], bbox_pred [K, 4 or 4C])."""
        for conv in self.shared_convs:
            x = conv(x)
        x = x.flatten(1)
        for fc in self.shared_fcs:
            x = F.relu(fc(x), inplace=True)
        return self.fc_cls(x), self.fc_reg(x)

    def get_targets(
        self, sampling_results: list[SamplingResult]
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Training targets for all sampled RoIs of the batch, concatenated in sampling order.

        Returns labels [K] (``num_classes`` = background), label_weights [K], bbox_targets [K, 4]
        (encoded deltas, or gt boxes when ``reg_decoded_bbox``) and bbox_weights [K, 4].
        """
        labels, label_weights, targets, weights = [], [], [], []
        for res in sampling_results:
            num_pos, num_neg = res.pos_priors.size(0), res.neg_priors.size(0)
            num_samples = num_pos + num_neg
            device = res.pos_priors.device
            gt_classes = torch.full(
                (num_samples,), self.num_classes, dtype=torch.long, device=device
            )
            gt_classes[:num_pos] = res.pos_gt_labels
            gt_deltas = res.pos_priors.new_zeros((num_samples, 4))
            deltas_weights = res.pos_priors.new_zeros((num_samples, 4))
            if num_pos > 0:
                if self.reg_decoded_bbox:
                    gt_deltas[:num_pos] = res.pos_gt_bboxes
                else:
                    gt_deltas[:num_pos] = self.bbox_coder.encode(res.pos_priors, res.pos_gt_bboxes)
                deltas_weights[:num_pos] = 1.0
            labels.append(gt_classes)
            label_weights.append(res.pos_priors.new_ones(num_samples))
            targets.append(gt_deltas)
            weights.append(deltas_weights)
        return torch.cat(labels), torch.cat(label_weights), torch.cat(targets), torch.cat(weights)

    def loss(
        self,
        cls_score: Tensor,
        bbox_pred: Tensor,
        rois: Tensor,
        sampling_results: list[SamplingResult],
    ) -> dict[str, Tensor]:
        """Classification and regression losses of sampled RoIs, plus classification accuracy."""
        labels, label_weights, bbox_targets, bbox_weights = self.get_targets(sampling_results)
        avg_factor = max(float((label_weights > 0).sum()), 1.0)
        losses = {
            'loss_cls': self.loss_cls(cls_score, labels, label_weights, avg_factor=avg_factor)
        }
        with torch.no_grad():
            # 0 (not NaN) when an image batch has no RoIs at all
            correct = (cls_score.argmax(1) == labels).float().sum()
            losses['acc'] = correct * 100 / max(labels.numel(), 1)
        pos = (labels >= 0) & (labels < self.num_classes)
        if pos.any():
            pred = bbox_pred.view(bbox_pred.size(0), -1, 4)
            pred = pred[pos, 0] if self.reg_class_agnostic else pred[pos, labels[pos]]
            if self.reg_decoded_bbox:
                pred = self.bbox_coder.decode(rois[pos, 1:], pred)
            losses['loss_bbox'] = self.loss_bbox(
                pred, bbox_targets[pos], bbox_weights[pos], avg_factor=bbox_targets.size(0)
            )
        else:
            losses['loss_bbox'] = bbox_pred.sum() * 0.0
        return losses

    def decode(self, rois: Tensor, bbox_pred: Tensor, img_shape: tuple[int, int]) -> Tensor:
        """Deltas [K, 4 or 4C] on rois [K, 5] -> boxes [K, 4 or 4C], clipped to ``img_shape``."""
        return self.bbox_coder.decode(rois[:, 1:], bbox_pred, max_shape=img_shape)

    def regress_by_class(
        self, priors: Tensor, labels: Tensor, bbox_pred: Tensor, img_shape: tuple[int, int]
    ) -> Tensor:
        """Apply each prior's deltas for its ``labels`` class, clipped to ``img_shape`` (h, w).

        priors [K, 4], labels [K], bbox_pred [K, 4 or 4C] -> boxes [K, 4].
        """
        pred = bbox_pred.view(bbox_pred.size(0), bbox_pred.size(1) // 4, 4)
        if self.reg_class_agnostic:
            pred = pred[:, 0]
        else:
            pred = pred[torch.arange(pred.size(0), device=pred.device), labels]
        return self.bbox_coder.decode(priors, pred, max_shape=img_shape)

    @torch.no_grad()
    def refine_bboxes(
        self,
        sampling_results: list[SamplingResult],
        rois: Tensor,
        cls_score: Tensor,
        bbox_pred: Tensor,
        batch_img_metas: list[dict],
    ) -> list[Tensor]:
        """Regressed sampled RoIs of each image: the next cascade stage's proposals.

        ``rois`` [K, 5], ``cls_score`` [K, C + 1] and ``bbox_pred`` [K, 4 or 4C] are this head's
        training outputs on the sampled RoIs (positives then negatives per image). A positive
        regresses with its ground-truth class, a negative with its highest-scoring foreground
        class. Ground-truth boxes the sampler added are dropped (the next stage's sampler adds
        them again). Returns one Tensor [Ki, 4] per image, without gradient.
        """
        labels = [
            torch.cat([res.pos_gt_labels, res.pos_gt_labels.new_full((len(res.neg_inds),), -1)])
            for res in sampling_results
        ]
        labels = torch.cat(labels) if labels else cls_score.new_zeros((0,), dtype=torch.long)
        labels = torch.where(labels < 0, cls_score[:, :-1].argmax(1), labels)
        counts = [len(res.pos_inds) + len(res.neg_inds) for res in sampling_results]
        refined = []
        for res, meta, image_rois, image_labels, deltas in zip(
            sampling_results,
            batch_img_metas,
            rois.split(counts),
            labels.split(counts),
            bbox_pred.detach().split(counts),
            strict=True,
        ):
            boxes = self.regress_by_class(
                image_rois[:, 1:], image_labels, deltas, meta['img_shape']
            )
            keep = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
            keep[: len(res.pos_is_gt)] = res.pos_is_gt == 0
            refined.append(boxes[keep])
        return refined

    def predict_by_feat(
        self,
        rois: Tensor,
        cls_score: Tensor,
        bbox_pred: Tensor,
        img_meta: dict,
        rcnn_test_cfg: ConfigDict | dict,
        rescale: bool = True,
    ) -> InstanceData:
        """One image's detections after score threshold and per-class NMS.

        ``rois`` [K, 5] in network-input coordinates. Returns InstanceData with ``bboxes`` [D, 4]
        (original image coordinates when ``rescale``), ``scores`` [D] and ``labels`` [D].
        """
        scores = F.softmax(cls_score.float(), dim=-1)[:, :-1]
        boxes = self.decode(rois.float(), bbox_pred.float(), img_meta['img_shape'])
        boxes = boxes.view(boxes.size(0), boxes.size(1) // 4, 4)
        if rescale and 'scale_factor' in img_meta:
            w_scale, h_scale = img_meta['scale_factor']
            boxes = boxes / boxes.new_tensor([w_scale, h_scale, w_scale, h_scale])
        boxes = boxes.expand(-1, self.num_classes, 4)
        return multiclass_nms(boxes, scores, rcnn_test_cfg)


def multiclass_nms(boxes: Tensor, scores: Tensor, cfg: ConfigDict | dict) -> InstanceData:
    """Per-class NMS. boxes [K, C, 4], scores [K, C] -> InstanceData(bboxes, scores, labels).

    Keeps (box, class) pairs with ``score > cfg['score_thr']``, runs NMS per class at
    ``cfg['nms']['iou_threshold']`` and returns at most ``cfg['max_per_img']`` by score.
    """
    keep_rows, labels = torch.nonzero(scores > cfg['score_thr'], as_tuple=True)
    det_boxes = boxes[keep_rows, labels]
    det_scores = scores[keep_rows, labels]
    nms_cfg = cfg.get('nms', dict(type='nms', iou_threshold=0.5))
    if nms_cfg.get('type', 'nms') != 'nms':
        raise KeyError(f"nms type {nms_cfg['type']!r} is not supported; use 'nms'")
    keep = batched_nms(det_boxes, det_scores, labels, nms_cfg['iou_threshold'])
    max_per_img = cfg.get('max_per_img', 100)
    if max_per_img > 0:
        keep = keep[:max_per_img]
    return InstanceData(bboxes=det_boxes[keep], scores=det_scores[keep], labels=labels[keep])


@MODELS.register_module()
class Shared2FCBBoxHead(ConvFCBBoxHead):
    """Two shared 1024-d FC layers (Mask R-CNN's box head)."""

    def __init__(self, fc_out_channels: int = 1024, **kwargs) -> None:
        super().__init__(
            num_shared_convs=0, num_shared_fcs=2, fc_out_channels=fc_out_channels, **kwargs
        )


@MODELS.register_module()
class Shared4Conv1FCBBoxHead(ConvFCBBoxHead):
    """Four shared 3x3 convs and one shared FC layer (usually with GN in ``norm_cfg``)."""

    def __init__(self, fc_out_channels: int = 1024, **kwargs) -> None:
        super().__init__(
            num_shared_convs=4, num_shared_fcs=1, fc_out_channels=fc_out_channels, **kwargs
        )
