"""The detector inside an inference wrapper (TTA, tiling), built from its config when given one."""

from __future__ import annotations

import copy

from torch import nn

from instseg.registry import MODELS


def build_wrapped_detector(
    module: dict | nn.Module, data_preprocessor: dict | nn.Module | None
) -> nn.Module:
    """``module`` itself when it is a module; else the detector built from a copy of its config,
    whose ``data_preprocessor`` is replaced by ``data_preprocessor`` when that is given."""
    if not isinstance(module, dict):
        return module
    module = copy.deepcopy(module)
    if data_preprocessor is not None:
        module['data_preprocessor'] = data_preprocessor
    return MODELS.build(module)
