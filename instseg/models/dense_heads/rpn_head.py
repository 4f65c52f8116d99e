"""Region proposal network: objectness and box deltas for every anchor of every FPN level."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn
from torchvision.ops import batched_nms

from instseg.models.layers import ConvModule
from instseg.models.task_modules.anchor_matching import (
    build_anchor_parts,
    grid_anchors,
    match_anchors,
)
from instseg.registry import MODELS
from instseg.structures.det_data_sample import SampleList


@MODELS.register_module()
class RPNHead(BaseModule):
    """A 3x3 conv shared across levels, then 1x1 ``rpn_cls`` (A logits) and ``rpn_reg`` (4A deltas).

    With ``num_convs > 1`` the shared part is a stack of 3x3 conv + ReLU blocks
    (``rpn_conv.{i}.conv``, as in mmdetection and torchvision's ``maskrcnn_resnet50_fpn_v2``).
    Anchors are ordered location-major, A per location, as the ``AnchorGenerator`` lays them out, so
    the conv output [B, A, H, W] flattens to [B, H * W * A] in the same order.
    """

    def __init__(
        self,
        in_channels: int,
        feat_channels: int = 256,
        num_convs: int = 1,
        num_classes: int = 1,
        # The dict defaults (mmdetection's signature) are only read: the builders copy them.
        anchor_generator: dict = dict(  # noqa: B006
            type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64]
        ),
        bbox_coder: dict = dict(  # noqa: B006
            type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0] * 4
        ),
        loss_cls: dict = dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),  # noqa: B006
        loss_bbox: dict = dict(type='L1Loss', loss_weight=1.0),  # noqa: B006
        train_cfg: ConfigDict | dict | None = None,
        test_cfg: ConfigDict | dict | None = None,
        init_cfg: dict | None = dict(type='Normal', layer='Conv2d', std=0.01),  # noqa: B006
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes != 1:
            raise ValueError(
                f'RPNHead predicts objectness only; num_classes must be 1, got {num_classes}'
            )
        if not loss_cls.get('use_sigmoid', False):
            raise ValueError('RPNHead needs a sigmoid classification loss (use_sigmoid=True)')
        num_anchors = build_anchor_parts(
            self, anchor_generator, bbox_coder, (loss_cls, loss_bbox), train_cfg, test_cfg
        )
        if num_convs < 1:
            raise ValueError(f'RPNHead num_convs must be at least 1, got {num_convs}')
        if num_convs == 1:
            self.rpn_conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        else:
            channels = [in_channels] + [feat_channels] * (num_convs - 1)
            self.rpn_conv = nn.Sequential(
                *(ConvModule(c, feat_channels, 3, padding=1) for c in channels)
            )
        self.rpn_cls = nn.Conv2d(feat_channels, num_anchors, 1)
        self.rpn_reg = nn.Conv2d(feat_channels, num_anchors * 4, 1)

    def forward(self, x: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: objectness [B, A, H, W] and deltas [B, 4A, H, W]."""
        scores, deltas = [], []
        for feat in x:
            feat = self.rpn_conv(feat)
            if isinstance(self.rpn_conv, nn.Conv2d):  # a stack of blocks ends in its own ReLU
                feat = F.relu(feat, inplace=True)
            scores.append(self.rpn_cls(feat))
            deltas.append(self.rpn_reg(feat))
        return scores, deltas

    @staticmethod
    def _flatten(scores: list[Tensor], deltas: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """[B, A, H, W] -> [B, H*W*A] and [B, 4A, H, W] -> [B, H*W*A, 4], per level."""
        flat_scores = [s.permute(0, 2, 3, 1).reshape(s.size(0), -1) for s in scores]
        flat_deltas = [d.permute(0, 2, 3, 1).reshape(d.size(0), -1, 4) for d in deltas]
        return flat_scores, flat_deltas

    # ----------------------------------------------------------------------------- training
    def loss_and_predict(
        self, x: tuple[Tensor, ...], batch_data_samples: SampleList, proposal_cfg: ConfigDict | dict
    ) -> tuple[dict[str, Tensor], list[InstanceData]]:
        """RPN losses and the proposals (from detached outputs) that train the RoI head."""
        scores, deltas = self(x)
        losses = self.loss_by_feat(scores, deltas, batch_data_samples)
        metas = [s.metainfo for s in batch_data_samples]
        with torch.no_grad():
            proposals = self.predict_by_feat(
                [s.detach() for s in scores], [d.detach() for d in deltas], metas, proposal_cfg
            )
        return losses, proposals

    def loss_by_feat(
        self, scores: list[Tensor], deltas: list[Tensor], batch_data_samples: SampleList
    ) -> dict[str, Tensor]:
        """Binary objectness and L1 delta losses over sampled anchors of the whole batch."""
        anchors = torch.cat(grid_anchors(self.prior_generator, scores))
        sizes = [tuple(s.shape[-2:]) for s in scores]
        flat_scores, flat_deltas = self._flatten(scores, deltas)
        all_scores = torch.cat(flat_scores, dim=1)
        all_deltas = torch.cat(flat_deltas, dim=1)
        allowed_border = self.train_cfg.get('allowed_border', -1)

        cls_targets, cls_weights, reg_targets, reg_weights = [], [], [], []
        avg_factor = 0
        for sample in batch_data_samples:
            pos, neg, res = match_anchors(self, anchors, sizes, sample, allowed_border)
            num_anchors = anchors.size(0)
            objectness = anchors.new_zeros(num_anchors)
            objectness_weights = anchors.new_zeros(num_anchors)
            deltas_target = anchors.new_zeros((num_anchors, 4))
            deltas_weights = anchors.new_zeros((num_anchors, 4))
            objectness[pos] = 1.0
            objectness_weights[pos] = 1.0
            objectness_weights[neg] = 1.0
            if pos.numel() > 0:
                deltas_target[pos] = self.bbox_coder.encode(res.pos_priors, res.pos_gt_bboxes)
                deltas_weights[pos] = 1.0
            avg_factor += pos.numel() + neg.numel()
            cls_targets.append(objectness)
            cls_weights.append(objectness_weights)
            reg_targets.append(deltas_target)
            reg_weights.append(deltas_weights)
        avg_factor = max(avg_factor, 1)
        loss_cls = self.loss_cls(
            all_scores.reshape(-1),
            torch.cat(cls_targets),
            torch.cat(cls_weights),
            avg_factor=avg_factor,
        )
        loss_bbox = self.loss_bbox(
            all_deltas.reshape(-1, 4),
            torch.cat(reg_targets),
            torch.cat(reg_weights),
            avg_factor=avg_factor,
        )
        return {'loss_rpn_cls': loss_cls, 'loss_rpn_bbox': loss_bbox}

    # ----------------------------------------------------------------------------- inference
    def predict(self, x: tuple[Tensor, ...], batch_data_samples: SampleList) -> list[InstanceData]:
        """Proposals per image: ``bboxes`` [P, 4] in network-input pixels and ``scores`` [P]."""
        scores, deltas = self(x)
        metas = [s.metainfo for s in batch_data_samples]
        return self.predict_by_feat(scores, deltas, metas, self.test_cfg)

    def predict_by_feat(
        self,
        scores: list[Tensor],
        deltas: list[Tensor],
        metas: list[dict],
        cfg: ConfigDict | dict,
    ) -> list[InstanceData]:
        """Top ``nms_pre`` anchors per level, decode, drop tiny boxes, NMS per level, keep
        ``max_per_img``."""
        anchors = grid_anchors(self.prior_generator, scores)
        flat_scores, flat_deltas = self._flatten(scores, deltas)
        nms_pre = cfg.get('nms_pre', -1)
        per_level = []
        for level, (s, d, a) in enumerate(zip(flat_scores, flat_deltas, anchors, strict=True)):
            s = s.float().sigmoid()
            if 0 < nms_pre < s.size(1):
                s, top = s.topk(nms_pre, dim=1)
                d = torch.gather(d, 1, top[..., None].expand(-1, -1, 4))
                a = a[top]
            else:
                a = a[None].expand(s.size(0), -1, 4)
            per_level.append((s, d.float(), a, torch.full_like(s, level, dtype=torch.long)))
        all_scores = torch.cat([p[0] for p in per_level], dim=1)
        all_deltas = torch.cat([p[1] for p in per_level], dim=1)
        all_anchors = torch.cat([p[2] for p in per_level], dim=1)
        all_levels = torch.cat([p[3] for p in per_level], dim=1)
        min_size = cfg.get('min_bbox_size', 0)
        iou_thr = cfg['nms']['iou_threshold']
        max_per_img = cfg.get('max_per_img', 1000)
        results = []
        for i, meta in enumerate(metas):
            boxes = self.bbox_coder.decode(
                all_anchors[i], all_deltas[i], max_shape=meta['img_shape']
            )
            s, lv = all_scores[i], all_levels[i]
            w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
            keep = (w > min_size) & (h > min_size)
            if not keep.all():
                boxes, s, lv = boxes[keep], s[keep], lv[keep]
            keep = batched_nms(boxes, s, lv, iou_thr)[:max_per_img]
            results.append(InstanceData(bboxes=boxes[keep], scores=s[keep]))
        return results
