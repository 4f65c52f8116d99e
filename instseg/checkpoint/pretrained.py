"""Loading pretrained backbone weights from local files, converting them on the fly.

``init_cfg=dict(type='Pretrained', checkpoint=PATH[, prefix='backbone.'])`` on any instseg
backbone reads ``PATH`` (``.pth``/``.pt``/``.bin`` through instseg's safe loader, ``.safetensors``
through the ``safetensors`` package that ships with timm), takes the weights from under
``state_dict``/``model``/``module``, keeps the ``backbone.`` entries of a detector checkpoint,
converts the keys (:mod:`~instseg.checkpoint.convert.backbones`) and loads them: a shape
mismatch is an error naming the key and both shapes; missing and unused keys are logged by name.
Nothing is downloaded.
"""

from __future__ import annotations

import logging
import os.path as osp
from collections.abc import Callable

from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor, nn

from instseg.checkpoint.convert.backbones import _example_keys, convert_for_backbone
from instseg.checkpoint.read import load_checkpoint_file

_CONTAINERS = ('state_dict', 'model', 'module')


def read_checkpoint(path: str, map_location: str = 'cpu') -> dict[str, Tensor]:
    """The flat ``dict[str, Tensor]`` of weights in a local file (no key conversion).

    Raises FileNotFoundError for a missing file and ValueError naming the file when it holds no
    tensors.
    """
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Pretrained weights {path} do not exist. instseg downloads nothing: put the file '
            'there (the config names where to get it) or change init_cfg.checkpoint'
        )
    if path.endswith('.safetensors'):
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ImportError(f'Reading {path} needs the safetensors package') from err
        obj = load_file(path, device=map_location)
    else:
        obj = load_checkpoint_file(path, map_location=map_location)
    while isinstance(obj, dict):
        inner = next((obj[k] for k in _CONTAINERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    state = {k: v for k, v in obj.items() if isinstance(v, Tensor)} if isinstance(obj, dict) else {}
    if not state:
        raise ValueError(f'{path} holds no weights (expected a dict of tensors, got {type(obj)})')
    return state


def _select(state: dict[str, Tensor], prefix: str | None, source: str) -> dict[str, Tensor]:
    """Keep the entries under ``prefix`` (stripped); without one, strip DDP's ``module.`` and keep
    a detector checkpoint's ``backbone.`` entries."""
    if prefix:
        selected = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not selected:
            raise KeyError(
                f'{source} has no key starting with {prefix!r}; example keys: '
                f'{_example_keys(state)}'
            )
        return selected
    if all(k.startswith('module.') for k in state):
        state = {k[len('module.') :]: v for k, v in state.items()}
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.') :]: v for k, v in state.items() if k.startswith('backbone.')}
    return state


def load_converted_state(
    backbone: nn.Module, state: dict[str, Tensor], source: str = 'state dict'
) -> tuple[list[str], list[str]]:
    """Load already converted weights into ``backbone``; returns (missing, unexpected) keys.

    Raises ValueError when a key's shape differs (naming the key and both shapes) or when no key
    matches at all.
    """
    own = backbone.state_dict()
    name = type(backbone).__name__
    mismatched = [
        f'{k}: {tuple(v.shape)} in {source}, {tuple(own[k].shape)} in {name}'
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if mismatched:
        raise ValueError('Shape mismatch loading pretrained weights:\n  ' + '\n  '.join(mismatched))
    if not any(k in own for k in state):
        raise ValueError(
            f'No key of {source} matches {name}: the file has {_example_keys(state)}; '
            f'the model has {_example_keys(own)}'
        )
    result = backbone.load_state_dict(state, strict=False)
    if result.missing_keys:
        print_log(
            f'{name}: {len(result.missing_keys)} weights missing from {source} keep their '
            f'initialisation: {", ".join(result.missing_keys)}',
            logger='current',
            level=logging.WARNING,
        )
    if result.unexpected_keys:
        print_log(
            f'{name}: {len(result.unexpected_keys)} entries of {source} are unused: '
            f'{", ".join(result.unexpected_keys)}',
            logger='current',
            level=logging.WARNING,
        )
    return list(result.missing_keys), list(result.unexpected_keys)


def load_pretrained(
    backbone: nn.Module, checkpoint: str, prefix: str | None = None, map_location: str = 'cpu'
) -> tuple[list[str], list[str]]:
    """Read ``checkpoint``, convert its keys to ``backbone``'s and load them (see module doc).

    Returns the (missing, unexpected) keys after conversion.
    """
    state = _select(read_checkpoint(checkpoint, map_location), prefix, checkpoint)
    state = convert_for_backbone(state, backbone, source=checkpoint)
    adapt = getattr(backbone, 'adapt_pretrained_state', None)
    if adapt is not None:
        state = adapt(state)
    missing, unexpected = load_converted_state(backbone, state, source=checkpoint)
    print_log(f'{type(backbone).__name__}: loaded weights from {checkpoint}', logger='current')
    return missing, unexpected


def split_init_cfg(init_cfg: dict | list[dict] | None) -> tuple[dict | None, list[dict]]:
    """``init_cfg`` -> (its ``Pretrained`` entry or None, the other entries)."""
    cfgs = [] if init_cfg is None else [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg)
    pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
    if len(pretrained) > 1:
        raise ValueError(f'init_cfg holds more than one Pretrained entry: {init_cfg}')
    return (pretrained[0] if pretrained else None), [c for c in cfgs if c not in pretrained]


def init_backbone_weights(
    backbone: BaseModule, init_from_scratch: Callable[[], None] | None = None
) -> None:
    """``init_weights`` of instseg's backbones: ``init_from_scratch`` (when no file is given) and
    the non-pretrained ``init_cfg`` entries, then the pretrained file through
    :func:`load_pretrained` instead of mmengine's loader."""
    if backbone.is_init:
        BaseModule.init_weights(backbone)  # mmengine warns about the second call
        return
    pretrained, others = split_init_cfg(backbone.init_cfg)
    if pretrained is None and init_from_scratch is not None:
        init_from_scratch()
    original = backbone.init_cfg
    backbone.init_cfg = others or None
    try:
        BaseModule.init_weights(backbone)
    finally:
        backbone.init_cfg = original
    if pretrained is not None:
        unknown = set(pretrained) - {'type', 'checkpoint', 'prefix', 'map_location'}
        if unknown or 'checkpoint' not in pretrained:
            raise ValueError(
                f'Pretrained init_cfg takes checkpoint, prefix and map_location, got {pretrained}'
            )
        load_pretrained(
            backbone,
            pretrained['checkpoint'],
            prefix=pretrained.get('prefix'),
            map_location=pretrained.get('map_location', 'cpu'),
        )
