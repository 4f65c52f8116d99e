"""COCO-format instance segmentation dataset."""

from __future__ import annotations

import colorsys
import contextlib
import gc
import json
import logging
import os.path as osp
from collections import defaultdict
from typing import Any

from mmengine.dataset import BaseDataset
from mmengine.fileio import exists, get_local_path
from mmengine.logging import print_log

from instseg.registry import DATASETS

COCO_CLASSES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone',
    'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
    'teddy bear', 'hair drier', 'toothbrush',
)  # fmt: skip


def make_palette(num_colors: int) -> list[tuple[int, int, int]]:
    """``num_colors`` distinct, saturated RGB colours (hues spread by the golden ratio)."""
    palette = []
    for i in range(num_colors):
        hue = (i * 0.618033988749895) % 1.0
        # Alternate brightness so neighbouring hues that come out close still differ.
        value = 0.95 if i % 2 == 0 else 0.7
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85, value)
        palette.append((round(r * 255), round(g * 255), round(b * 255)))
    return palette


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: parsing creates many small, acyclic dicts, and with
    torch loaded the collector's full sweeps would otherwise take most of the parse time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@DATASETS.register_module()
class CocoDataset(BaseDataset):
    """A COCO instance-segmentation annotation file parsed into light per-image records.

    Each record is ``dict(img_path, img_id, height, width, instances)`` where every instance is
    ``dict(bbox=[x1, y1, x2, y2], bbox_label=int, ignore_flag=0|1, mask=segmentation)``; the mask
    stays as written in the file (polygon list or RLE dict). Labels index ``metainfo['classes']``
    in its order; the matching COCO category ids are published as ``metainfo['cat_ids']`` once
    the file is loaded (at construction unless ``lazy_init``). Annotations with an unknown
    ``image_id`` or ``category_id`` are skipped and degenerate boxes dropped; ``parse_counts``
    holds how many, and one summary line is logged.

    Args:
        ann_file: COCO json, relative to ``data_root`` unless absolute.
        metainfo: overrides of :attr:`METAINFO`, e.g. ``dict(classes=('a', 'b'))`` to keep only
            those categories' annotations.
        data_root: folder that relative ``ann_file`` and ``data_prefix`` paths start from.
        data_prefix: ``dict(img='train2017/')``: folder the images' ``file_name`` is relative to.
        filter_cfg: ``dict(filter_empty_gt=True, min_size=32)``: in training, drop images without
            a non-ignored instance and images whose shorter side is below ``min_size``.
        backend_args: mmengine file backend arguments for reading ``ann_file``.
        Others as :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO: dict = dict(classes=COCO_CLASSES, palette=make_palette(len(COCO_CLASSES)))

    def __init__(
        self,
        ann_file: str = '',
        metainfo: dict | None = None,
        data_root: str = '',
        data_prefix: dict | None = None,
        filter_cfg: dict | None = None,
        indices: int | list[int] | None = None,
        serialize_data: bool = True,
        pipeline: list | None = None,
        test_mode: bool = False,
        lazy_init: bool = False,
        max_refetch: int = 1000,
        backend_args: dict | None = None,
    ) -> None:
        self.backend_args = backend_args
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=dict(img='') if data_prefix is None else data_prefix,
            filter_cfg=filter_cfg,
            indices=indices,
            serialize_data=serialize_data,
            pipeline=[] if pipeline is None else pipeline,
            test_mode=test_mode,
            lazy_init=lazy_init,
            max_refetch=max_refetch,
        )

    def _read_ann_file(self) -> dict:
        if not self.ann_file or not exists(self.ann_file, backend_args=self.backend_args):
            raise FileNotFoundError(f'COCO annotation file not found: {self.ann_file!r}')
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            with open(local_path) as f:
                try:
                    coco = json.load(f)
                except json.JSONDecodeError as err:
                    raise ValueError(f'{self.ann_file} is not valid JSON: {err}') from err
        for key in ('images', 'categories'):
            if not isinstance(coco.get(key), list):
                raise ValueError(f'{self.ann_file} has no {key!r} list; is it a COCO file?')
        return coco

    def _class_cat_ids(self, categories: list[dict]) -> list[int]:
        """COCO category ids in the order of ``metainfo['classes']``."""
        name_to_id: dict[str, int] = {}
        for cat in categories:
            if cat['name'] in name_to_id:
                raise ValueError(f'{self.ann_file}: category name {cat["name"]!r} appears twice')
            name_to_id[cat['name']] = cat['id']
        cat_ids = []
        for name in self._metainfo['classes']:
            if name not in name_to_id:
                raise ValueError(
                    f'Class {name!r} from metainfo is not a category of {self.ann_file} '
                    f'(its categories: {sorted(name_to_id)[:20]})'
                )
            cat_ids.append(name_to_id[name])
        return cat_ids

    def load_data_list(self) -> list[dict]:
        """Parse the annotation file into one record per image (in the file's image order)."""
        with _gc_paused():
            return self._load_data_list()

    def _load_data_list(self) -> list[dict]:
        coco = self._read_ann_file()
        file_cat_ids = {cat['id'] for cat in coco['categories']}
        cat_ids = self._class_cat_ids(coco['categories'])
        cat2label = {cat_id: label for label, cat_id in enumerate(cat_ids)}
        self._metainfo['cat_ids'] = cat_ids

        images = {}
        for img in coco['images']:
            missing = [k for k in ('id', 'file_name', 'height', 'width') if k not in img]
            if missing:
                raise ValueError(f'{self.ann_file}: image entry {img} lacks keys {missing}')
            images[img['id']] = img

        counts = dict(dangling_image=0, bad_category=0, degenerate=0)
        anns_per_image: dict[Any, list[dict]] = defaultdict(list)
        for ann in coco.get('annotations', []):
            if ann.get('image_id') not in images:
                counts['dangling_image'] += 1
            elif ann.get('category_id') not in file_cat_ids:
                counts['bad_category'] += 1
            else:
                anns_per_image[ann['image_id']].append(ann)

        data_list = []
        for img in coco['images']:
            instances = []
            for ann in anns_per_image.get(img['id'], []):
                if ann.get('ignore', False) or ann['category_id'] not in cat2label:
                    continue
                instance = self._parse_instance(ann, img, cat2label)
                if instance is None:
                    counts['degenerate'] += 1
                else:
                    instances.append(instance)
            data_list.append(
                dict(
                    img_path=osp.join(self.data_prefix.get('img', ''), img['file_name']),
                    img_id=img['id'],
                    height=img['height'],
                    width=img['width'],
                    instances=instances,
                )
            )

        num_instances = sum(len(d['instances']) for d in data_list)
        bad = counts['dangling_image'] + counts['bad_category']
        print_log(
            f'{self.ann_file}: {len(data_list)} images, {num_instances} instances of '
            f'{len(cat_ids)} classes; dropped {counts["degenerate"]} degenerate boxes '
            f'(w < 1, h < 1, area <= 0 or outside the image); skipped '
            f'{counts["dangling_image"]} annotations with an unknown image_id and '
            f'{counts["bad_category"]} with an unknown category_id',
            logger='current',
            level=logging.WARNING if bad else logging.INFO,
        )
        self.parse_counts = counts
        return data_list

    def _parse_instance(self, ann: dict, img: dict, cat2label: dict[int, int]) -> dict | None:
        """One annotation -> instance dict, or None when its box is degenerate."""
        if 'bbox' not in ann:
            raise ValueError(f'{self.ann_file}: annotation {ann.get("id")} has no "bbox"')
        x1, y1, w, h = (float(v) for v in ann['bbox'])
        inter_w = max(0.0, min(x1 + w, img['width']) - max(x1, 0.0))
        inter_h = max(0.0, min(y1 + h, img['height']) - max(y1, 0.0))
        if inter_w * inter_h == 0 or w < 1 or h < 1 or ann.get('area', w * h) <= 0:
            return None
        return dict(
            bbox=[x1, y1, x1 + w, y1 + h],
            bbox_label=cat2label[ann['category_id']],
            ignore_flag=1 if ann.get('iscrowd', 0) else 0,
            mask=ann.get('segmentation'),
        )

    def filter_data(self) -> list[dict]:
        """In training, drop images without a non-ignored instance or with a side < min_size."""
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        filter_empty_gt = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0)
        kept = []
        for info in self.data_list:
            if min(info['width'], info['height']) < min_size:
                continue
            if filter_empty_gt and not any(i['ignore_flag'] == 0 for i in info['instances']):
                continue
            kept.append(info)
        if len(kept) < len(self.data_list):
            print_log(
                f'{self.ann_file}: filtered out {len(self.data_list) - len(kept)} of '
                f'{len(self.data_list)} images (filter_empty_gt={filter_empty_gt}, '
                f'min_size={min_size})',
                logger='current',
            )
        return kept

    def get_cat_ids(self, idx: int) -> list[int]:
        """The 0-based labels of the idx-th image's instances (used by class-balanced samplers)."""
        return [instance['bbox_label'] for instance in self.get_data_info(idx)['instances']]
