"""Normalisation layers built from mmdetection-style ``norm_cfg`` dicts."""

from __future__ import annotations

from torch import nn

# type -> (class, attribute-name abbreviation used by mmdetection checkpoints)
_NORM_LAYERS: dict[str, tuple[type[nn.Module], str]] = {
    'BN': (nn.BatchNorm2d, 'bn'),
    'BN2d': (nn.BatchNorm2d, 'bn'),
    'SyncBN': (nn.SyncBatchNorm, 'bn'),
    'GN': (nn.GroupNorm, 'gn'),
}


def build_norm_layer(cfg: dict, num_features: int) -> tuple[str, nn.Module]:
    """Build the norm layer described by ``cfg`` for ``num_features`` channels (NCHW input).

    ``cfg`` holds ``type`` ('BN', 'BN2d', 'SyncBN' or 'GN'), optionally ``requires_grad``
    (Defaults to True; False freezes the affine parameters) and the layer's own keyword arguments
    (``eps``, ``momentum``, ``affine``; 'GN' needs ``num_groups``).

    Returns:
        ``(abbreviation, module)``: the abbreviation ('bn' or 'gn') is the attribute name
        mmdetection gives the layer, so state-dict keys match its checkpoints.
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'norm_cfg must be a dict with a "type" key, got {cfg!r}')
    kwargs = dict(cfg)
    norm_type = kwargs.pop('type')
    requires_grad = kwargs.pop('requires_grad', True)
    if norm_type not in _NORM_LAYERS:
        raise ValueError(
            f'Unknown norm_cfg type {norm_type!r}; expected one of {sorted(_NORM_LAYERS)}'
        )
    layer_cls, abbreviation = _NORM_LAYERS[norm_type]
    if norm_type == 'GN':
        if 'num_groups' not in kwargs:
            raise ValueError(f'norm_cfg {cfg!r} of type GN needs "num_groups"')
        num_groups = kwargs.pop('num_groups')
        if num_features % num_groups != 0:
            raise ValueError(
                f'norm_cfg {cfg!r}: {num_features} channels do not split into {num_groups} groups'
            )
        layer = layer_cls(num_groups, num_features, **kwargs)
    else:
        layer = layer_cls(num_features, **kwargs)
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return abbreviation, layer
