"""Reading ``tools/test.py --out`` pickles and pairing them with the test set's ground truth.

Used by ``tools/analysis_tools/confusion_matrix.py`` and ``analyze_results.py``; handy for any
offline analysis of predictions. Results files are unpickled with an allowlist (numpy arrays,
dtypes and scalars, builtin containers, strings, bytes and numbers): a pickle that would call
anything else, and so could run code, is refused before that call is made.
"""

from __future__ import annotations

import copy
import io
import os.path as osp
import pickle

import numpy as np
import pycocotools.mask as mask_util
from mmengine.config import Config
from mmengine.registry import init_default_scope

from instseg.registry import DATASETS

# (module, name) of the globals a results pickle needs: numpy's array, dtype and scalar
# constructors (numpy 2 and numpy 1 spellings), and the builtin containers and bytes constructor
# that pickle protocol 2 (mmengine's ``dump``) names, under their Python 2 module name too. None of
# them runs code of the file's choosing.
_BUILTINS = ('bytes', 'bytearray', 'set', 'frozenset', 'complex')
_RESULTS_GLOBALS = {
    ('_codecs', 'encode'),
    ('collections', 'OrderedDict'),
    ('numpy', 'ndarray'),
    ('numpy', 'dtype'),
    *((module, name) for module in ('numpy._core.multiarray', 'numpy.core.multiarray')
      for name in ('_reconstruct', 'scalar')),
    *((module, name) for module in ('builtins', '__builtin__') for name in _BUILTINS),
}  # fmt: skip


class UnsafeResultsError(pickle.UnpicklingError):
    """A results pickle refers to a callable outside the allowlist (it could run code)."""


class _ResultsUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the numpy globals of ``_RESULTS_GLOBALS``."""

    def find_class(self, module: str, name: str):
        if (module, name) in _RESULTS_GLOBALS or (
            module == 'numpy.dtypes' and name.endswith('DType')
        ):
            return super().find_class(module, name)
        raise UnsafeResultsError(f'{module}.{name}')


def read_results_pickle(path: str):
    """The object in the pickle file ``path``, unpickled with the results allowlist.

    Raises :class:`UnsafeResultsError` naming the file and the refused global, before calling it.
    """
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return _ResultsUnpickler(io.BytesIO(data)).load()
    except UnsafeResultsError as err:
        raise UnsafeResultsError(
            f'Refusing to load {path}: it calls {err}, which a results file from tools/test.py '
            '--out never holds (only numpy arrays, numbers, strings, lists and dicts), and '
            'unpickling it could run arbitrary code'
        ) from None


def load_det_results(path: str) -> list[dict]:
    """The per-image prediction dicts of a ``--out`` pickle, checked for the expected fields.

    Raises FileNotFoundError for a missing file, :class:`UnsafeResultsError` for a pickle that
    needs more than arrays (see :func:`read_results_pickle`) and ValueError naming the file when it
    is not a list of dicts with ``img_id`` and ``pred_instances`` (``bboxes``, ``scores``,
    ``labels``).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Results file {path} does not exist')
    try:
        results = read_results_pickle(path)
    except UnsafeResultsError:
        raise
    except Exception as err:  # noqa: BLE001  (any unpickling failure means a wrong file)
        raise ValueError(
            f'{path} is not a results pickle from tools/test.py --out: {err}'
        ) from None
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise ValueError(f'{path} must hold a list of per-image dicts (tools/test.py --out)')
    for i, res in enumerate(results):
        pred = res.get('pred_instances')
        if 'img_id' not in res or not isinstance(pred, dict):
            raise ValueError(f'{path}: entry {i} has no img_id or pred_instances')
        missing = [k for k in ('bboxes', 'scores', 'labels') if k not in pred]
        if missing:
            raise ValueError(f'{path}: pred_instances of image {res["img_id"]} lack {missing}')
    return results


def build_test_dataset(cfg: Config):
    """The config's test dataset with its records loaded (the pipeline is not run)."""
    init_default_scope(cfg.get('default_scope', 'instseg'))
    dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    return DATASETS.build(dataset_cfg)


def records_by_img_id(dataset, results: list[dict], results_path: str = '') -> list[dict]:
    """The dataset record of each result, in the results' order.

    Raises ValueError naming the first image ids that the dataset does not have (the pickle was
    made with another test set).
    """
    by_id = {}
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        by_id[info['img_id']] = info
    unknown = [res['img_id'] for res in results if res['img_id'] not in by_id]
    if unknown:
        raise ValueError(
            f'{results_path or "results"}: image ids {unknown[:5]} are not in the test dataset '
            f'({len(by_id)} images); were the results made with this config?'
        )
    return [by_id[res['img_id']] for res in results]


def instance_rle(segmentation, height: int, width: int) -> dict:
    """A COCO segmentation (polygon list, uncompressed or compressed RLE) as compressed RLE."""
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            return mask_util.encode(np.zeros((height, width, 1), dtype=np.uint8, order='F'))[0]
        return mask_util.merge(mask_util.frPyObjects(polygons, height, width))
    if isinstance(segmentation.get('counts'), list):
        return mask_util.frPyObjects(segmentation, height, width)
    return segmentation


def ground_truth(record: dict, with_masks: bool = True) -> dict:
    """Non-ignored instances of a dataset record: ``bboxes`` float32 [N, 4] (x1, y1, x2, y2),
    ``labels`` int64 [N] and, with ``with_masks``, ``masks`` (N compressed RLE dicts)."""
    instances = [inst for inst in record.get('instances', []) if not inst.get('ignore_flag', 0)]
    gt = dict(
        bboxes=np.array([inst['bbox'] for inst in instances], dtype=np.float32).reshape(-1, 4),
        labels=np.array([inst['bbox_label'] for inst in instances], dtype=np.int64),
    )
    if with_masks:
        height, width = int(record['height']), int(record['width'])
        gt['masks'] = [
            instance_rle(inst['mask'], height, width) for inst in instances if 'mask' in inst
        ]
        if len(gt['masks']) != len(instances):
            gt['masks'] = None
    return gt


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """[N, 4] (x1, y1, x2, y2) -> [N, 4] (x, y, w, h), the box format of pycocotools."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    boxes[:, 2:] -= boxes[:, :2]
    return boxes


def pairwise_iou(dets, gts, iou_type: str = 'bbox') -> np.ndarray:
    """IoU [D, G] between detections and ground truths: boxes [N, 4] xyxy for ``'bbox'``, lists
    of RLE dicts for ``'segm'`` (pycocotools' ``iou``)."""
    if len(dets) == 0 or len(gts) == 0:
        return np.zeros((len(dets), len(gts)))
    if iou_type == 'bbox':
        ious = mask_util.iou(xyxy_to_xywh(dets), xyxy_to_xywh(gts), [0] * len(gts))
    else:
        ious = mask_util.iou(list(dets), list(gts), [0] * len(gts))
    return np.asarray(ious, dtype=np.float64).reshape(len(dets), len(gts))
