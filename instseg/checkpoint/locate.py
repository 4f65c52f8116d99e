"""Where weights named by a URL are on disk. instseg never downloads anything.

mmdetection's configs name pretrained weights by URL (``torchvision://resnet50``,
``open-mmlab://resnext101_32x4d``, ``https://github.com/.../swin_small_patch4_window7_224.pth``).
mmengine would download them into torch's hub cache, ``$TORCH_HOME/hub/checkpoints/`` (see
``torch.hub.get_dir()``), under the URL's last path component; instseg uses a file of that name
found there or in ``checkpoints/`` (relative to the working directory) and otherwise raises
:class:`MissingWeightsError`, saying which file to put where and the URL to get it from. The
file names behind ``torchvision://`` and ``open-mmlab://`` come from the tables mmengine keeps
(built from the installed torchvision's model URLs and mmengine's ``hub/openmmlab.json``), so
``torchvision://resnet50`` is ``resnet50-0676ba61.pth``.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

import torch.hub

URL_SCHEMES = (
    'http://',
    'https://',
    'torchvision://',
    'modelzoo://',
    'open-mmlab://',
    'openmmlab://',
    'mmcls://',
)
LOCAL_DIR = 'checkpoints'


class MissingWeightsError(FileNotFoundError):
    """Weights named by a URL are not on disk (and instseg downloads nothing)."""


def is_url(name: str) -> bool:
    """Whether ``name`` is a URL that :func:`locate_weights` looks up rather than a path."""
    return str(name).startswith(URL_SCHEMES)


def hub_checkpoint_dir() -> str:
    """``$TORCH_HOME/hub/checkpoints``: where torch (and mmengine) cache downloaded weights."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def download_url(name: str) -> str:
    """The http(s) URL that a ``torchvision://``, ``open-mmlab://`` or ``mmcls://`` name stands
    for (an http(s) URL stands for itself). KeyError naming the model when the table lacks it."""
    from mmengine.runner import checkpoint as mmengine_checkpoint

    scheme, _, model = name.partition('://')
    if scheme in ('http', 'https'):
        return name
    if scheme in ('torchvision', 'modelzoo'):
        table = mmengine_checkpoint.get_torchvision_models()
    elif scheme in ('open-mmlab', 'openmmlab'):
        table = mmengine_checkpoint.get_external_models()
        model = mmengine_checkpoint.get_deprecated_model_names().get(model, model)
    elif scheme == 'mmcls':
        table = mmengine_checkpoint.get_mmcls_models()
    else:
        raise ValueError(f'{name}: instseg reads only {", ".join(URL_SCHEMES)} URLs and paths')
    if model not in table:
        raise KeyError(f'{name}: {scheme}:// knows no model {model!r}; {_closest(model, table)}')
    return table[model]


def _closest(model: str, table: Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(model, list(table), n=3)
    return f'did you mean {", ".join(close)}?' if close else 'check the name'


def cached_file_name(name: str) -> str:
    """The file name a download of ``name`` gets in torch's hub cache (the URL's basename)."""
    url = download_url(name)
    base = osp.basename(urlparse(url).path)
    if not base:
        raise ValueError(f'{name}: the URL {url} names no file')
    return base


def _candidates(file_name: str) -> Iterator[str]:
    yield osp.join(hub_checkpoint_dir(), file_name)
    yield osp.join(LOCAL_DIR, file_name)


def locate_weights(name: str) -> str:
    """The local file for ``name``: a path as it is, a URL as the file of its name in torch's
    hub cache or in ``checkpoints/``.

    Raises MissingWeightsError (a FileNotFoundError) for a URL whose file is in neither place,
    naming the file, both places and the URL to download it from. A local path that does not
    exist is returned as it is (the reader names it).
    """
    name = str(name)
    if not is_url(name):
        return name
    file_name = cached_file_name(name)
    for path in _candidates(file_name):
        if osp.isfile(path):
            return path
    url = download_url(name)
    raise MissingWeightsError(
        f'Weights {name} are not on disk, and instseg downloads nothing. Download {url} '
        f"and save it as {osp.join(hub_checkpoint_dir(), file_name)} (torch's hub cache, "
        f'$TORCH_HOME/hub/checkpoints) or as {osp.join(LOCAL_DIR, file_name)} (relative to where '
        'you run), or point the config at a local file.'
    )


def missing_weights(names: list[str]) -> list[str]:
    """Messages for the entries of ``names`` (paths or URLs) that are not on disk."""
    problems = []
    for name in names:
        try:
            path = locate_weights(name)
        except (FileNotFoundError, KeyError, ValueError) as err:
            problems.append(str(err).strip('"\''))
            continue
        if not osp.isfile(osp.expanduser(path)):
            problems.append(f'{name} does not exist')
    return problems
