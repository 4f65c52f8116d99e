"""Mixed-precision optimiser wrapper that also runs on CPU hosts (bfloat16 autocast)."""

from __future__ import annotations

import numbers

import torch
from mmengine.device import get_device
from mmengine.optim import AmpOptimWrapper as MMEngineAmpOptimWrapper
from mmengine.optim import OptimWrapper

from instseg.registry import OPTIM_WRAPPERS

_DTYPES = ('float16', 'bfloat16', 'float32', 'float64')


@OPTIM_WRAPPERS.register_module()
class AmpOptimWrapper(MMEngineAmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` (autocast forward, scaled backward), usable on CPU too.

    mmengine's refuses to build without a GPU; this one runs CPU training under bfloat16
    autocast (the only low-precision type CPU autocast supports), which is how ``--amp`` is
    tested without a GPU. On GPUs it is mmengine's wrapper unchanged.

    Args:
        loss_scale: ``'dynamic'`` (GradScaler defaults), a number (a fixed initial scale, int or
            float) or a dict of ``torch.amp.GradScaler`` arguments. Defaults to ``'dynamic'``.
        dtype: ``'float16'`` or ``'bfloat16'`` (or a torch dtype); None picks float16 on CUDA
            and bfloat16 on CPU. Defaults to None.
        use_fsdp: use the sharded scaler of FSDP (GPU only). Defaults to False.
        **kwargs: ``optimizer``, ``clip_grad``, ``accumulative_counts`` of ``OptimWrapper``.
    """

    def __init__(
        self,
        loss_scale: str | float | dict = 'dynamic',
        dtype: str | torch.dtype | None = None,
        use_fsdp: bool = False,
        **kwargs,
    ) -> None:
        if isinstance(loss_scale, numbers.Real) and not isinstance(loss_scale, bool):
            loss_scale = float(loss_scale)  # mmengine takes a static scale only as a float
        elif not (loss_scale == 'dynamic' or isinstance(loss_scale, dict)):
            raise TypeError(
                f"AmpOptimWrapper: loss_scale must be 'dynamic', a number or a dict of GradScaler "
                f'arguments, got {loss_scale!r}'
            )
        if isinstance(dtype, str) and dtype not in _DTYPES:
            raise ValueError(f'AmpOptimWrapper: dtype must be one of {_DTYPES}, got {dtype!r}')
        if get_device() != 'cpu':
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if dtype not in (None, torch.bfloat16):
            raise ValueError(
                f'AmpOptimWrapper: CPU autocast runs in bfloat16 only, got dtype={dtype}; use '
                "dtype='bfloat16' (or leave it out) on a host without a GPU"
            )
        if use_fsdp:
            raise ValueError('AmpOptimWrapper: use_fsdp needs GPUs')
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        if loss_scale == 'dynamic':
            self.loss_scaler = torch.amp.GradScaler('cpu')
        elif isinstance(loss_scale, float):
            self._scale_update_param = loss_scale
            self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=loss_scale)
        else:
            self.loss_scaler = torch.amp.GradScaler('cpu', **loss_scale)
        self.cast_dtype = torch.bfloat16
