"""Reading checkpoint files safely: local paths and URLs of files already on disk.

torch >= 2.6 unpickles with ``weights_only=True`` by default, which rejects the objects that
mmengine writes into a checkpoint (:mod:`.allowlist`), so ``--resume`` would fail as shipped.
Rather than turn safe loading off, instseg keeps ``weights_only=True`` and allows exactly those
extra types. A file that needs any other pickled object is refused with a message; users who
trust such a file opt in with the environment variable ``INSTSEG_TRUST_CHECKPOINTS=1`` (or the
tools' ``--trust-checkpoint``). ``.safetensors`` files are read with the ``safetensors`` package
(it ships with timm). URLs are looked up on disk by :mod:`.locate`: nothing is downloaded.

Importing this module routes mmengine's checkpoint loading (``load_from``, ``--resume``,
``init_cfg=dict(type='Pretrained')`` of any module) through :func:`read_checkpoint`.
"""

from __future__ import annotations

import os
import os.path as osp
import pickle
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor

from instseg.checkpoint.allowlist import SAFE_GLOBALS, allowed_names
from instseg.checkpoint.locate import URL_SCHEMES, locate_weights

TRUST_ENV = 'INSTSEG_TRUST_CHECKPOINTS'
# Entries that hold the weights, outermost first: mmengine / mmdetection / instseg, the official
# Swin and ConvNeXt releases, DDP-wrapped saves.
_CONTAINERS = ('state_dict', 'model', 'module')
_SAMPLE_KEYS = 8


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside instseg's allowlist."""


class CorruptCheckpointError(ValueError):
    """A checkpoint file cannot be read as one: truncated, or not a checkpoint at all."""


def trust_checkpoints() -> bool:
    """Whether the user opted in to arbitrary pickled objects (``INSTSEG_TRUST_CHECKPOINTS``)."""
    return os.environ.get(TRUST_ENV, '') not in ('', '0', 'false', 'False')


def load_checkpoint_file(filename: str, map_location: Any = None) -> Any:
    """What a local checkpoint file holds, read by ``torch.load(weights_only=True)`` plus
    instseg's allowlist (``.safetensors``: its dict of tensors).

    Raises FileNotFoundError naming a missing file, :class:`CorruptCheckpointError` naming a
    truncated or unreadable one and :class:`UnsafeCheckpointError` naming the file and the
    refused objects when it needs anything else, unless the user opted in.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint {filename} does not exist')
    try:
        if filename.endswith('.safetensors'):
            return _load_safetensors(filename, map_location)
        if trust_checkpoints():
            return torch.load(filename, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if _looks_truncated(err):
            raise _corrupt(filename, err) from err
        raise UnsafeCheckpointError(
            f'Refusing to load {filename}: it contains pickled objects that are neither '
            f'weights nor types instseg writes ({_refused(filename, err)}), and loading them '
            f'could run arbitrary code. If you trust this file, set {TRUST_ENV}=1 or pass '
            '--trust-checkpoint to the tool.'
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError) or not _looks_truncated(err):
            raise
        raise _corrupt(filename, err) from err


def _load_safetensors(filename: str, map_location: Any) -> dict[str, Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as err:
        raise ImportError(f'Reading {filename} needs the safetensors package') from err
    return load_file(filename, device=str(map_location or 'cpu'))


# What torch, pickle and safetensors say about a file that ends early or is no checkpoint.
_TRUNCATION_WORDS = (
    'central directory',
    'zip archive',
    'ran out of input',
    'truncated',
    'unexpected eof',
    'incomplete metadata',
    'invalid load key',
    'header too large',
    'metadataincompletebuffer',
)


def _looks_truncated(err: BaseException) -> bool:
    if isinstance(err, EOFError):
        return True
    text = f'{type(err).__name__} {err}'.lower()
    return any(words in text for words in _TRUNCATION_WORDS)


def _corrupt(filename: str, err: BaseException) -> CorruptCheckpointError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return CorruptCheckpointError(
        f'Cannot read checkpoint {filename} ({osp.getsize(filename)} bytes): it looks truncated '
        'or is not a checkpoint file (an interrupted download, copy or save?). Download or copy '
        f'it again. ({reason})'
    )


def _refused(filename: str, err: Exception) -> str:
    """Names of the globals in ``filename`` that the allowlist refuses, for the error message."""
    try:
        allowed = allowed_names()
        names = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        names = [n for n in names if n not in allowed]
    except Exception:  # an unreadable file: fall back to torch's own words
        names = []
    return ', '.join(names) if names else str(err).strip().splitlines()[-1]


def read_checkpoint(name: str, map_location: Any = 'cpu') -> Any:
    """What the checkpoint ``name`` holds: a local path, or a URL (``https://``,
    ``torchvision://``, ``open-mmlab://``) of a file already on disk (see :mod:`.locate`)."""
    return load_checkpoint_file(locate_weights(str(name)), map_location=map_location)


def extract_state_dict(checkpoint: Any, source: str = 'checkpoint') -> dict[str, Tensor]:
    """The flat ``dict[str, Tensor]`` of weights inside a loaded checkpoint.

    Goes down ``state_dict`` (mmengine, mmdetection, instseg), ``model`` (the official Swin /
    ConvNeXt releases) and ``module`` entries while there are any, strips a DDP ``module.``
    prefix and keeps the tensors; ``meta``, ``message_hub`` and optimizer states are ignored.
    A bare mapping of tensors (torchvision, timm) is taken as it is.

    Raises ValueError naming ``source`` and its top-level keys when it holds no tensors.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{source} holds a {type(checkpoint).__name__}, not a checkpoint dict')
    state: Mapping = checkpoint
    while True:
        inner = next((state[k] for k in _CONTAINERS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    weights = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if not weights:
        raise ValueError(
            f'{source} holds no weights: expected a "state_dict" or "model" entry or a mapping '
            f'of tensors; its top-level keys are {example_keys(checkpoint)}'
        )
    if all(k.startswith('module.') for k in weights):
        weights = {k[len('module.') :]: v for k, v in weights.items()}
    return weights


def read_state_dict(name: str, map_location: Any = 'cpu') -> dict[str, Tensor]:
    """:func:`read_checkpoint` then :func:`extract_state_dict`."""
    return extract_state_dict(read_checkpoint(name, map_location), str(name))


def example_keys(keys: Iterable[str], count: int = _SAMPLE_KEYS) -> str:
    """The first ``count`` keys, quoted, and how many there are, for messages."""
    keys = list(keys)
    more = f', ... ({len(keys)} in all)' if len(keys) > count else ''
    return ', '.join(repr(k) for k in keys[:count]) + more


# Every local path and every URL scheme goes through the safe loader and the on-disk lookup, so
# mmengine never downloads and never unpickles without the allowlist.
CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)
CheckpointLoader.register_scheme(prefixes=URL_SCHEMES, loader=read_checkpoint, force=True)
