"""Any timm model that supports ``features_only`` as a backbone."""

from __future__ import annotations

from collections.abc import Sequence

import timm
from mmengine.model import BaseModule
from torch import Tensor

from instseg.checkpoint.pretrained import init_backbone_weights
from instseg.registry import MODELS


@MODELS.register_module()
class TimmBackbone(BaseModule):
    """A timm ``features_only`` model (MobileNet, EfficientNet(V2), RegNet, ConvNeXt, Swin, ...)
    returning NCHW maps.

    The network is built with ``pretrained=False``; weights come from ``pretrained`` or
    ``init_cfg`` as a local file holding the whole timm model (``.pth`` or Hugging Face
    ``.safetensors``), converted to the feature wrapper's keys while loading. Models whose
    features come out channels-last (timm's Swin) are permuted to NCHW.

    Args:
        model_name: a timm model name, e.g. 'mobilenetv2_100', 'tf_efficientnetv2_b0'.
        out_indices: indices into the model's feature levels (``feature_info``), increasing.
            Defaults to None: the last four levels (strides 4-32 for most models).
        pretrained: False, or the path of a local weights file (shorthand for
            ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``). True is refused: it would
            download. Defaults to False.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH)``. Defaults to None (timm's init).
        **timm_kwargs: passed to ``timm.create_model`` (``drop_path_rate``, ``in_chans``, ...).

    Attributes:
        out_channels: channels of each returned map.
        strides: stride of each returned map relative to the input.
    """

    weight_family = 'timm'

    def __init__(
        self,
        model_name: str,
        out_indices: Sequence[int] | None = None,
        pretrained: bool | str = False,
        init_cfg: dict | list[dict] | None = None,
        **timm_kwargs,
    ) -> None:
        if pretrained is True:
            raise ValueError(
                f'TimmBackbone({model_name!r}, pretrained=True) would download weights; give a '
                "local file instead: pretrained='path/to/weights.safetensors'"
            )
        if pretrained:
            if init_cfg is not None:
                raise ValueError('TimmBackbone takes init_cfg or a pretrained path, not both')
            init_cfg = dict(type='Pretrained', checkpoint=str(pretrained))
        super().__init__(init_cfg=init_cfg)
        requested = (-4, -3, -2, -1) if out_indices is None else tuple(out_indices)
        try:
            self.timm_model = timm.create_model(
                model_name,
                pretrained=False,
                features_only=True,
                out_indices=requested,
                **timm_kwargs,
            )
        except IndexError as err:
            raise ValueError(
                f'TimmBackbone out_indices {requested} are out of range for {model_name}'
            ) from err
        num_levels = len(self.timm_model.feature_info.info)
        out_indices = tuple(i % num_levels for i in requested)
        if list(out_indices) != sorted(set(out_indices)):
            raise ValueError(f'TimmBackbone out_indices must increase, got {requested}')
        self.model_name = model_name
        self.out_indices = out_indices
        self.channels_last = getattr(self.timm_model, 'output_fmt', 'NCHW') == 'NHWC'
        self.out_channels: list[int] = list(self.timm_model.feature_info.channels())
        self.strides: list[int] = list(self.timm_model.feature_info.reduction())

    def init_weights(self) -> None:
        """Load ``init_cfg``'s pretrained file; otherwise keep timm's initialisation."""
        init_backbone_weights(self)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Images Tensor[B, C_in, H, W] -> one Tensor[B, out_channels[k], H_k, W_k] per entry of
        ``out_indices`` (H_k about H / strides[k]; exact rounding is the model's)."""
        outs = self.timm_model(x)
        if self.channels_last:
            outs = [out.permute(0, 3, 1, 2).contiguous() for out in outs]
        return tuple(outs)
