"""Packing a pipeline's results dict into the model's inputs."""

from __future__ import annotations

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData

from instseg.registry import TRANSFORMS
from instseg.structures.det_data_sample import DetDataSample

# results key -> InstanceData field
_GT_FIELDS = {'gt_bboxes': 'bboxes', 'gt_bboxes_labels': 'labels', 'gt_masks': 'masks'}
_DTYPES = {'gt_bboxes': torch.float32, 'gt_bboxes_labels': torch.int64}


@TRANSFORMS.register_module()
class PackDetInputs(BaseTransform):
    """Pack ``img`` and ground truth into ``dict(inputs, data_samples)``.

    ``inputs`` is the image as a contiguous Tensor[C, H, W] of its loaded dtype (uint8, BGR);
    ``data_samples`` a :class:`DetDataSample` whose ``gt_instances`` hold the non-ignored
    instances (``bboxes`` float32 Tensor[N, 4], ``labels`` int64 Tensor[N], ``masks`` container)
    and ``ignored_instances`` the ones with ``gt_ignore_flags`` set (crowd regions), both present
    only when the results carry ground truth. Metainfo: the ``meta_keys`` found in the results.
    """

    def __init__(
        self,
        meta_keys: tuple[str, ...] = (
            'img_id',
            'img_path',
            'ori_shape',
            'img_shape',
            'scale_factor',
            'flip',
            'flip_direction',
        ),
    ) -> None:
        self.meta_keys = tuple(meta_keys)

    @staticmethod
    def _image_tensor(img: np.ndarray) -> torch.Tensor:
        if img.ndim == 2:
            img = img[..., None]
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))

    def transform(self, results: dict) -> dict:
        """Return ``dict(inputs=Tensor[C, H, W], data_samples=DetDataSample)``."""
        packed = {}
        if 'img' in results:
            packed['inputs'] = self._image_tensor(results['img'])

        data_sample = DetDataSample()
        present = [key for key in _GT_FIELDS if key in results]
        if present:
            num = len(results[present[0]])
            flags = results.get('gt_ignore_flags')
            if flags is None:
                flags = np.zeros(num, dtype=bool)
            keep = np.flatnonzero(~flags)
            ignore = np.flatnonzero(flags)
            gt_instances, ignored_instances = InstanceData(), InstanceData()
            for key in present:
                value = results[key]
                field = _GT_FIELDS[key]
                if key == 'gt_masks':
                    gt_instances[field] = value[keep]
                    ignored_instances[field] = value[ignore]
                else:
                    value = torch.as_tensor(np.asarray(value), dtype=_DTYPES[key])
                    gt_instances[field] = value[torch.from_numpy(keep)]
                    ignored_instances[field] = value[torch.from_numpy(ignore)]
            data_sample.gt_instances = gt_instances
            data_sample.ignored_instances = ignored_instances

        data_sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        packed['data_samples'] = data_sample
        return packed

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
