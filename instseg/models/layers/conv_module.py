"""Conv -> norm -> activation block with mmdetection's attribute names."""

from __future__ import annotations

from torch import Tensor, nn

from instseg.models.layers.norm import build_norm_layer

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    'ReLU': nn.ReLU,
    'LeakyReLU': nn.LeakyReLU,
    'SiLU': nn.SiLU,
}
_DEFAULT_ACT_CFG = dict(type='ReLU')


class ConvModule(nn.Module):
    """A 2-d convolution followed by an optional norm layer and an optional activation.

    Attribute names follow mmcv's ``ConvModule`` so checkpoints keep their keys: ``conv``, then
    ``bn`` or ``gn`` (from ``norm_cfg``), then ``activate`` (no parameters).
    As mmcv's, it initialises itself when built: ``conv`` Kaiming-normal (fan-out, for the
    activation that follows) with a zero bias, the norm layer's weight 1 and bias 0. An owning
    module's ``init_cfg`` (FPN's Xavier, RPN's Normal) may override this in ``init_weights``.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups: as
            :class:`torch.nn.Conv2d`.
        bias: True, False or 'auto' (a bias only when there is no norm layer). Defaults to 'auto'.
        conv_cfg: None or ``dict(type='Conv2d')``; only plain convolutions are supported.
        norm_cfg: see :func:`~instseg.models.layers.build_norm_layer`. Defaults to None (no norm).
        act_cfg: ``dict(type='ReLU' | 'LeakyReLU' | 'SiLU', ...)`` or None for no activation.
            Defaults to ReLU.
        inplace: whether the activation works in place. Defaults to True.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool | str = 'auto',
        conv_cfg: dict | None = None,
        norm_cfg: dict | None = None,
        act_cfg: dict | None = _DEFAULT_ACT_CFG,
        inplace: bool = True,
    ) -> None:
        super().__init__()
        if conv_cfg is not None and conv_cfg.get('type') not in ('Conv2d', 'Conv'):
            raise NotImplementedError(
                f'conv_cfg {conv_cfg!r} is not supported; only plain Conv2d is'
            )
        if bias == 'auto':
            bias = norm_cfg is None
        elif not isinstance(bias, bool):
            raise ValueError(f"bias must be True, False or 'auto', got {bias!r}")
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        )
        self.norm_name: str | None = None
        if norm_cfg is not None:
            self.norm_name, norm = build_norm_layer(norm_cfg, out_channels)
            self.add_module(self.norm_name, norm)
        self.activate: nn.Module | None = None
        if act_cfg is not None:
            act_kwargs = dict(act_cfg)
            act_type = act_kwargs.pop('type', None)
            if act_type not in _ACTIVATIONS:
                raise ValueError(
                    f'Unknown act_cfg type {act_type!r}; expected one of {sorted(_ACTIVATIONS)}'
                )
            self.activate = _ACTIVATIONS[act_type](inplace=inplace, **act_kwargs)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan-out) ``conv`` with a zero bias; norm weight 1 and bias 0."""
        if isinstance(self.activate, nn.LeakyReLU):
            nonlinearity, slope = 'leaky_relu', self.activate.negative_slope
        else:
            nonlinearity, slope = 'relu', 0.0
        nn.init.kaiming_normal_(
            self.conv.weight, a=slope, mode='fan_out', nonlinearity=nonlinearity
        )
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)
        norm = self.norm
        if norm is not None and getattr(norm, 'weight', None) is not None:
            nn.init.ones_(norm.weight)
            nn.init.zeros_(norm.bias)

    @property
    def norm(self) -> nn.Module | None:
        """The norm layer (``bn`` or ``gn``), or None."""
        return getattr(self, self.norm_name) if self.norm_name else None

    def forward(self, x: Tensor) -> Tensor:
        """Map Tensor[B, C_in, H, W] to Tensor[B, C_out, H', W']."""
        x = self.conv(x)
        if self.norm_name is not None:
            x = getattr(self, self.norm_name)(x)
        if self.activate is not None:
            x = self.activate(x)
        return x
