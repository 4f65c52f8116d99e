"""YOLACT's box head: per-anchor class scores, box deltas and mask coefficients."""

from __future__ import annotations

import torch
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from instseg.models.layers import ConvModule, fast_nms
from instseg.models.task_modules.anchor_matching import (
    build_anchor_parts,
    grid_anchors,
    match_anchors,
)
from instseg.registry import MODELS
from instseg.structures.det_data_sample import SampleList

_TRAIN_KEYS = {'assigner', 'sampler', 'neg_pos_ratio', 'allowed_border', 'pos_weight', 'debug'}
# mask_thr_binary and mask_thr are read by the YOLACTProtonet, which shares the test_cfg.
_TEST_KEYS = {'nms_pre', 'min_bbox_size', 'score_thr', 'iou_thr', 'top_k', 'max_per_img'}
_MASK_TEST_KEYS = {'mask_thr_binary', 'mask_thr'}


def check_cfg_keys(cfg: ConfigDict | dict | None, known: set[str], where: str) -> None:
    """Raise a ValueError naming any key of ``cfg`` that nothing reads."""
    unknown = sorted(set(cfg or {}) - known)
    if unknown:
        raise ValueError(f'{where} has keys nothing reads: {unknown}; known: {sorted(known)}')


@MODELS.register_module()
class YOLACTHead(BaseModule):
    """Shared convs (``head_convs``), then three 3x3 convs on every FPN level: ``conv_cls``
    (A x (num_classes + 1) softmax logits, background last), ``conv_reg`` (A x 4 deltas) and
    ``conv_coeff`` (A x num_protos mask coefficients through tanh).

    Training matches anchors to ground truth with ``train_cfg.assigner`` (a ``MaxIoUAssigner``),
    keeps the positives and the ``train_cfg.neg_pos_ratio`` x as many negatives with the highest
    classification loss per image (OHEM, ``use_ohem``; else every negative), and normalises both
    losses by the number of positives in the batch. :meth:`loss` also returns, per image, what
    the mask head needs of the positives (``coeffs``, ``bboxes`` of their ground truths,
    ``pos_assigned_gt_inds``). Inference keeps ``test_cfg.nms_pre`` anchors per level, decodes
    them and runs class-wise :func:`~instseg.models.layers.fast_nms`; detections stay in
    network-input pixels.

    Anchors of a level are ordered location-major, A per location, as the ``AnchorGenerator``
    lays them out.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        # The dict defaults (mmdetection's signature) are only read: the builders copy them.
        anchor_generator: dict = dict(  # noqa: B006
            type='AnchorGenerator',
            octave_base_scale=3,
            scales_per_octave=1,
            ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128],
        ),
        bbox_coder: dict = dict(  # noqa: B006
            type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]
        ),
        loss_cls: dict = dict(  # noqa: B006
            type='CrossEntropyLoss', use_sigmoid=False, reduction='none', loss_weight=1.0
        ),
        loss_bbox: dict = dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.5),  # noqa: B006
        num_head_convs: int = 1,
        num_protos: int = 32,
        use_ohem: bool = True,
        conv_cfg: dict | None = None,
        norm_cfg: dict | None = None,
        train_cfg: ConfigDict | dict | None = None,
        test_cfg: ConfigDict | dict | None = None,
        init_cfg: dict | None = dict(  # noqa: B006
            type='Xavier', distribution='uniform', bias=0, layer='Conv2d'
        ),
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if loss_cls.get('use_sigmoid', False):
            raise ValueError('YOLACTHead needs a softmax classification loss (use_sigmoid=False)')
        check_cfg_keys(train_cfg, _TRAIN_KEYS, 'YOLACT train_cfg')
        check_cfg_keys(test_cfg, _TEST_KEYS | _MASK_TEST_KEYS, 'YOLACT test_cfg')
        if train_cfg is not None and train_cfg.get('debug', False):
            raise ValueError('YOLACT train_cfg.debug=True is not supported')
        self.num_classes = num_classes
        self.num_protos = num_protos
        self.use_ohem = use_ohem
        num_anchors = build_anchor_parts(
            self, anchor_generator, bbox_coder, (loss_cls, loss_bbox), train_cfg, test_cfg
        )
        self.num_base_priors = num_anchors
        self.head_convs = nn.ModuleList(
            ConvModule(
                in_channels if i == 0 else feat_channels,
                feat_channels,
                3,
                padding=1,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
            )
            for i in range(num_head_convs)
        )
        head_out = feat_channels if num_head_convs > 0 else in_channels
        self.conv_cls = nn.Conv2d(head_out, num_anchors * (num_classes + 1), 3, padding=1)
        self.conv_reg = nn.Conv2d(head_out, num_anchors * 4, 3, padding=1)
        self.conv_coeff = nn.Conv2d(head_out, num_anchors * num_protos, 3, padding=1)

    def forward(self, x: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per level: class logits [B, A(C+1), H, W], deltas [B, 4A, H, W], coefficients
        [B, A*num_protos, H, W] in (-1, 1)."""
        cls_scores, bbox_preds, coeff_preds = [], [], []
        for feat in x:
            for conv in self.head_convs:
                feat = conv(feat)
            cls_scores.append(self.conv_cls(feat))
            bbox_preds.append(self.conv_reg(feat))
            coeff_preds.append(self.conv_coeff(feat).tanh())
        return cls_scores, bbox_preds, coeff_preds

    def _flatten(self, maps: list[Tensor], channels: int) -> Tensor:
        """Per-level [B, A*channels, H, W] -> [B, sum(H*W*A), channels], anchor order."""
        return torch.cat(
            [m.permute(0, 2, 3, 1).reshape(m.size(0), -1, channels) for m in maps], dim=1
        )

    # ----------------------------------------------------------------------------- training
    def loss(
        self, x: tuple[Tensor, ...], batch_data_samples: SampleList
    ) -> tuple[dict[str, Tensor], list[InstanceData]]:
        """Classification and box losses, and the positives' coefficients for the mask head."""
        cls_scores, bbox_preds, coeff_preds = self(x)
        return self.loss_by_feat(cls_scores, bbox_preds, coeff_preds, batch_data_samples)

    def loss_by_feat(
        self,
        cls_scores: list[Tensor],
        bbox_preds: list[Tensor],
        coeff_preds: list[Tensor],
        batch_data_samples: SampleList,
    ) -> tuple[dict[str, Tensor], list[InstanceData]]:
        """OHEM softmax loss and SmoothL1 delta loss, both divided by the batch's positives."""
        cfg = self.train_cfg
        anchors = torch.cat(grid_anchors(self.prior_generator, cls_scores))
        sizes = [tuple(s.shape[-2:]) for s in cls_scores]
        all_scores = self._flatten(cls_scores, self.num_classes + 1)
        all_deltas = self._flatten(bbox_preds, 4)
        all_coeffs = self._flatten(coeff_preds, self.num_protos)
        allowed_border = cfg.get('allowed_border', -1)
        pos_weight = cfg.get('pos_weight', -1)
        neg_pos_ratio = cfg.get('neg_pos_ratio', 3)

        cls_losses, pos_deltas, pos_targets, positive_infos = [], [], [], []
        for i, sample in enumerate(batch_data_samples):
            pos, neg, res = match_anchors(self, anchors, sizes, sample, allowed_border)

            loss_pos = self.loss_cls(
                all_scores[i, pos], res.pos_gt_labels, reduction_override='none'
            )
            if pos_weight > 0:
                loss_pos = loss_pos * pos_weight
            loss_neg = self.loss_cls(
                all_scores[i, neg],
                torch.full_like(neg, self.num_classes),
                reduction_override='none',
            )
            if self.use_ohem:
                # An image without positives keeps neg_pos_ratio negatives (mmdetection keeps all
                # of them, which then outweighs every other loss of the batch).
                num_neg = min(neg_pos_ratio * max(pos.numel(), 1), neg.numel())
                loss_neg = loss_neg.topk(num_neg).values
            cls_losses += [loss_pos, loss_neg]
            pos_deltas.append(all_deltas[i, pos])
            pos_targets.append(self.bbox_coder.encode(anchors[pos], res.pos_gt_bboxes))
            positive_infos.append(
                InstanceData(
                    coeffs=all_coeffs[i, pos],
                    bboxes=res.pos_gt_bboxes,
                    labels=res.pos_gt_labels,
                    pos_assigned_gt_inds=res.pos_assigned_gt_inds,
                )
            )
        num_pos = max(sum(len(p) for p in positive_infos), 1)
        loss_cls = torch.cat(cls_losses).sum() / num_pos
        loss_bbox = self.loss_bbox(
            torch.cat(pos_deltas).float(), torch.cat(pos_targets).float(), avg_factor=num_pos
        )
        if sum(len(p) for p in positive_infos) == 0:
            loss_bbox = all_deltas.sum() * 0.0  # keep every output in the graph (DDP)
        return {'loss_cls': loss_cls, 'loss_bbox': loss_bbox}, positive_infos

    # ----------------------------------------------------------------------------- inference
    def predict(self, x: tuple[Tensor, ...], batch_data_samples: SampleList) -> list[InstanceData]:
        """Detections per image in network-input pixels: ``bboxes`` [N, 4], ``scores`` [N],
        ``labels`` [N] and ``coeffs`` [N, num_protos]."""
        cls_scores, bbox_preds, coeff_preds = self(x)
        metas = [s.metainfo for s in batch_data_samples]
        return self.predict_by_feat(cls_scores, bbox_preds, coeff_preds, metas)

    def predict_by_feat(
        self,
        cls_scores: list[Tensor],
        bbox_preds: list[Tensor],
        coeff_preds: list[Tensor],
        metas: list[dict],
    ) -> list[InstanceData]:
        """Top ``nms_pre`` anchors per level by best foreground score, decode, drop boxes not
        wider and taller than ``min_bbox_size``, then Fast NMS (``score_thr``, ``iou_thr``,
        ``top_k``, ``max_per_img``)."""
        cfg = self.test_cfg
        nms_pre = cfg.get('nms_pre', -1)
        min_size = cfg.get('min_bbox_size', 0)
        anchors = grid_anchors(self.prior_generator, cls_scores)
        results = []
        for i, meta in enumerate(metas):
            scores, deltas, coeffs, priors = [], [], [], []
            for s, d, c, a in zip(cls_scores, bbox_preds, coeff_preds, anchors, strict=True):
                s = s[i].permute(1, 2, 0).reshape(-1, self.num_classes + 1).float().softmax(-1)
                d = d[i].permute(1, 2, 0).reshape(-1, 4)
                c = c[i].permute(1, 2, 0).reshape(-1, self.num_protos)
                if 0 < nms_pre < s.size(0):
                    top = s[:, : self.num_classes].max(dim=1).values.topk(nms_pre).indices
                    s, d, c, a = s[top], d[top], c[top], a[top]
                scores.append(s)
                deltas.append(d)
                coeffs.append(c)
                priors.append(a)
            boxes = self.bbox_coder.decode(
                torch.cat(priors), torch.cat(deltas).float(), max_shape=meta['img_shape']
            )
            scores, coeffs = torch.cat(scores), torch.cat(coeffs)
            if min_size > 0:
                w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
                keep = (w > min_size) & (h > min_size)
                boxes, scores, coeffs = boxes[keep], scores[keep], coeffs[keep]
            det_scores, labels, keep = fast_nms(
                boxes,
                scores[:, : self.num_classes],
                cfg['score_thr'],
                cfg['iou_thr'],
                cfg['top_k'],
                cfg.get('max_per_img', -1),
            )
            results.append(
                InstanceData(
                    bboxes=boxes[keep], scores=det_scores, labels=labels, coeffs=coeffs[keep]
                )
            )
        return results
