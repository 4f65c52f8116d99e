"""Load a whole detector's weights from any supported checkpoint, converting key names on the fly.

The Runner's ``load_checkpoint`` (``load_from=``, ``--resume``, the checkpoint of
``tools/test.py``) goes through :func:`load_detector_state`: the file is read by the safe loader,
its key names are converted (:mod:`instseg.checkpoint.convert`: torchvision, mmdetection 2.x and
3.x, ...) and the weights are copied into the model. Missing and unexpected keys are logged by
name. A tensor whose shape differs from the model's is an error naming the key and both shapes,
except in the class-specific layers (:data:`CLASS_SPECIFIC_LAYERS`) when only the number of
classes differs: starting a 1-class model from an 80-class COCO checkpoint keeps those layers as
the model has them (freshly initialised) and logs which.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn

from instseg.checkpoint.convert import BACKBONE_FORMATS, convert_state_dict, extract_state_dict
from instseg.checkpoint.read import load_checkpoint_file

# Output layers with one row (or 4 rows) per class, by module name (mmdetection's): the box
# classifier and regressor and the mask predictor, in every stage of a cascade.
CLASS_SPECIFIC_LAYERS = ('fc_cls', 'fc_reg', 'conv_logits')
_MAX_LISTED = 100  # keys named in one message


@dataclass
class LoadReport:
    """What loading did: the format converted from and the keys that did not load as they were."""

    format: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)


def read_checkpoint(filename: str, map_location: Any = 'cpu') -> Any:
    """Read a checkpoint: local files through instseg's safe loader, URLs through mmengine's."""
    if '://' in str(filename):
        return CheckpointLoader.load_checkpoint(filename, map_location=map_location)
    return load_checkpoint_file(str(filename), map_location=map_location)


def load_detector_weights(
    model: nn.Module,
    filename: str,
    map_location: Any = 'cpu',
    strict: bool = False,
    fmt: str = 'auto',
    logger: Any = 'current',
) -> tuple[Any, LoadReport]:
    """Read ``filename``, convert its keys and load them into ``model``.

    Returns ``(checkpoint as read, LoadReport)``; see :func:`load_detector_state`.
    """
    checkpoint = read_checkpoint(filename, map_location)
    report = load_detector_state(model, checkpoint, str(filename), strict, fmt, logger=logger)
    return checkpoint, report


def load_detector_state(
    model: nn.Module,
    checkpoint: Mapping[str, Any],
    source: str = 'checkpoint',
    strict: bool = False,
    fmt: str = 'auto',
    revise_keys: Sequence[tuple[str, str]] = ((r'^module\.', ''),),
    logger: Any = 'current',
) -> LoadReport:
    """Convert a loaded checkpoint's state dict to instseg's keys and copy it into ``model``.

    Args:
        model: the detector (not a DDP wrapper).
        checkpoint: what ``torch.load`` returned: a bare state dict or one under ``state_dict``
            or ``model``.
        source: the file name, for messages.
        strict: raise RuntimeError when keys are missing or unexpected (after conversion).
        fmt: 'auto' or a format of :data:`instseg.checkpoint.convert.FORMATS`. A backbone-only
            format loads into ``model.backbone``.
        revise_keys: ``(pattern, replacement)`` regex pairs applied to every key first.
        logger: mmengine logger (or 'current') for the report.

    Raises:
        ValueError: a shape differs outside the class-specific layers, naming every such key
            with the checkpoint's and the model's shape.
    """
    state, fmt = convert_for_model(model, checkpoint, source, fmt, revise_keys)
    own = model.state_dict()
    reinitialized, mismatched = [], []
    for key in [k for k in state if k in own and state[k].shape != own[k].shape]:
        shapes = f'{key}: checkpoint {tuple(state[key].shape)}, model {tuple(own[key].shape)}'
        if _is_class_specific(key) and state[key].shape[1:] == own[key].shape[1:]:
            reinitialized.append(key)
            del state[key]
        else:
            mismatched.append(shapes)
    if mismatched:
        raise ValueError(
            f'Cannot load {source} ({fmt} format): {len(mismatched)} tensor(s) differ in shape '
            f"from the model's:\n  {_listing(mismatched, sep=_NEWLINE)}\nWas the checkpoint "
            'trained with this config (depth, channels, number of convs, class-agnostic heads)?'
        )
    result = model.load_state_dict(state, strict=False)
    # BatchNorm's batch counter only matters for momentum=None; torchvision's frozen BN lacks it.
    missing = [
        k
        for k in result.missing_keys
        if not k.endswith('num_batches_tracked') and k not in reinitialized
    ]
    report = LoadReport(fmt, missing, list(result.unexpected_keys), reinitialized)
    _log(report, source, logger)
    if strict and (report.missing or report.unexpected):
        raise RuntimeError(
            f'{source} does not match the model exactly: missing keys: '
            f'{_listing(report.missing)}; unexpected keys: {_listing(report.unexpected)}'
        )
    return report


def convert_for_model(
    model: nn.Module,
    checkpoint: Mapping[str, Any],
    source: str = 'checkpoint',
    fmt: str = 'auto',
    revise_keys: Sequence[tuple[str, str]] = ((r'^module\.', ''),),
) -> tuple[dict[str, Tensor], str]:
    """The state dict of a loaded checkpoint under ``model``'s key names: ``(state, format)``.

    What :func:`load_detector_state` loads, for callers that check a checkpoint before loading
    it. A torchvision COCO checkpoint keeps the 80 used COCO classes when ``model`` has 80; a
    backbone-only checkpoint gets the ``backbone.`` prefix.
    """
    state = extract_state_dict(checkpoint, source)
    for pattern, replacement in revise_keys:
        state = {re.sub(pattern, replacement, k): v for k, v in state.items()}
    state, fmt = convert_state_dict(state, fmt, source, num_classes=_num_classes(model))
    if fmt in BACKBONE_FORMATS:
        state = {f'backbone.{k}': v for k, v in state.items()}
    return state, fmt


def _num_classes(model: nn.Module) -> int | None:
    """Number of classes of the model's (first) box head, or None without one."""
    for module in model.modules():
        if hasattr(module, 'fc_cls') and isinstance(getattr(module, 'num_classes', None), int):
            return module.num_classes
    return None


def _is_class_specific(key: str) -> bool:
    parts = key.split('.')
    return len(parts) >= 2 and parts[-2] in CLASS_SPECIFIC_LAYERS


_NEWLINE = '\n  '


def _listing(keys: Sequence[str], sep: str = ', ') -> str:
    if not keys:
        return 'none'
    more = f'{sep}... and {len(keys) - _MAX_LISTED} more' if len(keys) > _MAX_LISTED else ''
    return sep.join(keys[:_MAX_LISTED]) + more


def _log(report: LoadReport, source: str, logger: Any) -> None:
    if report.reinitialized:
        print_log(
            f'{source}: the number of classes differs; these class-specific layers keep the '
            f"model's initialisation: {_listing(report.reinitialized)}",
            logger=logger,
            level=logging.WARNING,
        )
    if report.missing:
        print_log(
            f'{source}: keys of the model missing in the checkpoint (left as initialised): '
            f'{_listing(report.missing)}',
            logger=logger,
            level=logging.WARNING,
        )
    if report.unexpected:
        print_log(
            f'{source}: checkpoint keys the model does not have (ignored): '
            f'{_listing(report.unexpected)}',
            logger=logger,
            level=logging.WARNING,
        )
    print_log(f'Loaded {source} ({report.format} format)', logger=logger, level=logging.INFO)
