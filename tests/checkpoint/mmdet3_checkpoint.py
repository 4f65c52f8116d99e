"""A checkpoint as mmdetection 3.x's Runner writes it, with numpy 1.x's pickle names."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from mmengine.logging import MessageHub
from mmengine.optim import LinearLR, MultiStepLR, OptimWrapper
from torch import nn

_NUMPY2 = 'numpy._core'


class Numpy1Pickler(pickle._Pickler):
    """Writes numpy's functions under their numpy 1.x module names (``numpy.core.multiarray``),
    as the numpy that mmdetection 3.x installs alongside mmcv 2.x did."""

    def save_global(self, obj, name=None):
        module = getattr(obj, '__module__', '') or ''
        if module.startswith(_NUMPY2):
            old = 'numpy.core' + module[len(_NUMPY2) :]
            self.write(pickle.GLOBAL + f'{old}\n{name or obj.__qualname__}\n'.encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


class _Numpy1Pickle:
    Pickler = Numpy1Pickler
    Unpickler = pickle.Unpickler
    __name__ = 'pickle'


def write_mmdet3_checkpoint(
    model: nn.Module, path: Path, classes: tuple[str, ...], epoch: int = 12
) -> dict:
    """Save ``model`` the way mmengine's ``Runner.save_checkpoint`` does inside mmdetection 3.3:
    ``meta`` (epoch, iter, cfg text, seed, experiment_name, time, mmengine_version,
    dataset_meta), ``state_dict``, ``message_hub`` (HistoryBuffers of numpy arrays),
    ``optimizer`` and ``param_schedulers`` (including MultiStepLR's ``Counter``)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    wrapper = OptimWrapper(optimizer)
    warmup = LinearLR(optimizer, start_factor=0.001, by_epoch=False, begin=0, end=500)
    steps = MultiStepLR(optimizer, milestones=[8, 11], by_epoch=True, begin=0, end=12)
    for param in model.parameters():  # one step, so the optimizer has momentum buffers
        param.grad = torch.zeros_like(param)
    optimizer.step()
    warmup.step()
    steps.step()
    hub = MessageHub.get_instance('mmdet3_checkpoint_writer')
    for name, value in (('train/loss', 1.25), ('train/lr', np.float64(0.02)), ('train/time', 0.4)):
        hub.update_scalar(name, value)
    dataset_meta = dict(classes=classes, palette=[(220, 20, 60)] * len(classes))
    hub.update_info('dataset_meta', dataset_meta)
    hub.update_info('epoch', epoch)
    hub.update_info('iter', 100)
    checkpoint = dict(
        meta=dict(
            epoch=epoch,
            iter=100,
            cfg="default_scope = 'mmdet'\nmodel = dict(type='MaskRCNN')\n",
            seed=1234,
            experiment_name='mask-rcnn_r50_fpn_1x_coco_20240101_120000',
            time='20240101_130000',
            mmengine_version='0.10.3',
            dataset_meta=dataset_meta,
        ),
        state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
        message_hub=hub.state_dict(),
        optimizer=wrapper.state_dict(),
        param_schedulers=[warmup.state_dict(), steps.state_dict()],
    )
    torch.save(checkpoint, path, pickle_module=_Numpy1Pickle)
    return checkpoint


def pickled_names(path: Path) -> set[str]:
    """The globals a checkpoint file's pickle names."""
    return set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))


def same_weights(model: nn.Module, state: Mapping[str, torch.Tensor]) -> bool:
    own = model.state_dict()
    return all(torch.equal(own[k], v) for k, v in state.items())
