"""COCO-format instance segmentation dataset."""

from __future__ import annotations

import colorsys
import contextlib
import gc
import json
import logging
import os.path as osp
from collections import Counter, defaultdict
from typing import Any

from mmengine.dataset import BaseDataset
from mmengine.fileio import exists, get_local_path
from mmengine.logging import print_log

from instseg.registry import DATASETS, TRANSFORMS, check_types

from .bad_data import ParseReport, box_problem, valid_polygons
from .image_io import BadImageError

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
    the file is loaded (at construction unless ``lazy_init``).

    Bad data never stops a run unless ``strict``. At load, images whose file is missing,
    duplicated ids, annotations with an unknown image or category, unusable boxes, polygons of
    fewer than 3 points and malformed masks are dropped (see :data:`bad_data.PROBLEMS`), each
    counted in ``parse_counts`` (with ``images_without_annotations``) and logged in one summary
    that names the first files and ids of each kind. At run time, an image that cannot be read
    or disagrees with its record's size is skipped with a warning (training draws another
    image; in ``test_mode`` a black image of the record's size stands in, so every image id
    still gets a prediction) and counted in ``skipped_images`` (per process).

    Args:
        ann_file: COCO json, relative to ``data_root`` unless absolute.
        metainfo: overrides of :attr:`METAINFO`, e.g. ``dict(classes=('a', 'b'))`` to keep only
            those categories' annotations.
        data_root: folder that relative ``ann_file`` and ``data_prefix`` paths start from.
        data_prefix: ``dict(img='train2017/')``: folder the images' ``file_name`` is relative to.
        filter_cfg: ``dict(filter_empty_gt=True, min_size=32)``: in training, drop images without
            a non-ignored instance and images whose shorter side is below ``min_size``.
        strict: raise on any bad data (at load, with the whole summary; at run time, the
            image's error) instead of dropping it.
        backend_args: mmengine file backend arguments for reading ``ann_file``; image files are
            checked for existence at load only with the local backend (``None``).
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
        strict: bool = False,
        backend_args: dict | None = None,
    ) -> None:
        self.backend_args = backend_args
        self.strict = strict
        self.parse_counts: dict[str, int] = {}
        self.skipped_images: Counter[str] = Counter()
        check_types(pipeline or [], TRANSFORMS)  # a misspelled transform names the closest ones
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
        if not isinstance(coco.get('annotations', []), list):
            raise ValueError(f'{self.ann_file}: "annotations" is not a list')
        return coco

    def _class_cat_ids(self, categories: list[dict]) -> list[int]:
        """COCO category ids in the order of ``metainfo['classes']``."""
        name_to_id: dict[str, int] = {}
        for cat in categories:
            if 'id' not in cat or 'name' not in cat:
                raise ValueError(f'{self.ann_file}: category {cat} lacks "id" or "name"')
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

    def _img_path(self, img: dict) -> str:
        return osp.join(self.data_prefix.get('img', ''), img['file_name'])

    def _unique_images(self, coco: dict, report: ParseReport) -> dict[Any, dict]:
        """image id -> image entry, for well-formed entries with an id seen for the first time."""
        images: dict[Any, dict] = {}
        for img in coco['images']:
            missing = [k for k in ('id', 'file_name', 'height', 'width') if k not in img]
            if missing or not (_is_positive(img['height']) and _is_positive(img['width'])):
                what = f'lacks {missing}' if missing else 'has a side < 1'
                report.add('bad_image_entry', f'image entry {str(img)[:120]} {what}')
            elif not isinstance(img['id'], (int, str)):
                what = f'has an id of type {type(img["id"]).__name__}'
                report.add('bad_image_entry', f'image entry {str(img)[:120]} {what}')
            elif img['id'] in images:
                report.add(
                    'duplicate_image_id',
                    f'img_id {img["id"]} ({self._img_path(img)}) was used before by '
                    f'{images[img["id"]]["file_name"]}',
                )
            else:
                images[img['id']] = img
        return images

    def _check_files(self, images: dict[Any, dict], report: ParseReport) -> None:
        """Drop images whose file is missing (local files only: remote checks cost a request)."""
        if self.backend_args is not None:
            return
        for img_id, img in list(images.items()):
            path = self._img_path(img)
            if '://' not in path and not osp.isfile(path):
                report.add('missing_image_file', f'{path} (img_id {img_id}) does not exist')
                del images[img_id]

    def _load_data_list(self) -> list[dict]:
        coco = self._read_ann_file()
        report = ParseReport(self.ann_file)
        file_cat_ids = {cat.get('id') for cat in coco['categories']}
        cat_ids = self._class_cat_ids(coco['categories'])
        cat2label = {cat_id: label for label, cat_id in enumerate(cat_ids)}
        self._metainfo['cat_ids'] = cat_ids

        images = self._unique_images(coco, report)
        listed_ids = set(images)
        self._check_files(images, report)
        annotations = coco.get('annotations', [])
        # A file without any segmentation is a box-only dataset; otherwise each needs one.
        needs_mask = any('segmentation' in ann for ann in annotations)

        seen_ann_ids: set = set()
        anns_per_image: dict[Any, list[dict]] = defaultdict(list)
        for ann in annotations:
            ann_id, image_id = ann.get('id'), ann.get('image_id')
            if isinstance(ann_id, (int, str)) and ann_id in seen_ann_ids:
                report.add('duplicate_ann_id', f'ann id {ann_id} (img_id {image_id}) repeats')
                continue
            if isinstance(ann_id, (int, str)):
                seen_ann_ids.add(ann_id)
            if not isinstance(image_id, (int, str)) or image_id not in listed_ids:
                report.add('dangling_image', f'ann id {ann_id}: no image has id {image_id!r}')
            elif image_id in images:
                if ann.get('category_id') in file_cat_ids:
                    anns_per_image[image_id].append(ann)
                else:
                    report.add(
                        'bad_category',
                        f'ann id {ann_id} ({self._img_path(images[image_id])}): category_id '
                        f'{ann.get("category_id")!r} is not in categories',
                    )
            # else: its image's file is missing, which is already counted

        data_list = []
        for img in images.values():
            instances = []
            for ann in anns_per_image.get(img['id'], []):
                if ann.get('ignore', False) or ann['category_id'] not in cat2label:
                    continue
                instance = self._parse_instance(ann, img, cat2label, report, needs_mask)
                if instance is not None:
                    instances.append(instance)
            data_list.append(
                dict(
                    img_path=self._img_path(img),
                    img_id=img['id'],
                    height=img['height'],
                    width=img['width'],
                    instances=instances,
                )
            )
        self.parse_counts = dict(
            report.counts,
            images_without_annotations=sum(1 for img in images if img not in anns_per_image),
        )
        self._log_summary(data_list, len(cat_ids), report)
        return data_list

    def _log_summary(self, data_list: list[dict], num_classes: int, report: ParseReport) -> None:
        num_instances = sum(len(d['instances']) for d in data_list)
        summary = (
            f'{self.ann_file}: {len(data_list)} images, {num_instances} instances of '
            f'{num_classes} classes; {self.parse_counts["images_without_annotations"]} images '
            f'without annotations'
        )
        if not report.num_problems:
            print_log(f'{summary}; no bad data', logger='current')
            return
        summary += f'; {report.num_problems} problems:\n{report.details()}'
        if self.strict:
            raise ValueError(f'{summary}\n(strict=True: fix these or drop strict to skip them)')
        print_log(
            f'{summary}\nThese were left out; CocoDataset(strict=True) raises instead.',
            logger='current',
            level=logging.WARNING,
        )

    def _parse_instance(
        self,
        ann: dict,
        img: dict,
        cat2label: dict[int, int],
        report: ParseReport,
        needs_mask: bool,
    ) -> dict | None:
        """One annotation -> instance dict, or None (counted in ``report``) when unusable."""
        where = f'ann id {ann.get("id")} ({self._img_path(img)}, img_id {img["id"]})'
        problem = box_problem(ann.get('bbox'), ann.get('area'), img['width'], img['height'])
        if problem is not None:
            report.add(problem, f'{where}: bbox {ann.get("bbox")!r}, area {ann.get("area")!r}')
            return None
        x1, y1, w, h = (float(v) for v in ann['bbox'])
        instance = dict(
            bbox=[x1, y1, x1 + w, y1 + h],
            bbox_label=cat2label[ann['category_id']],
            ignore_flag=1 if ann.get('iscrowd', 0) else 0,
        )
        if 'segmentation' not in ann and not needs_mask:
            instance['mask'] = None
            return instance
        segm = _checked_segmentation(ann.get('segmentation'), img, where, report)
        if segm is None:
            return None
        instance['mask'] = segm
        return instance

    def prepare_data(self, idx: int) -> Any:
        """Run the pipeline on the idx-th record; a bad image is skipped (None) in training and
        replaced by a black image in ``test_mode``, with a warning, unless ``strict``."""
        try:
            return super().prepare_data(idx)
        except BadImageError as err:
            if self.strict:
                raise
            data_info = self.get_data_info(idx)
            self.skipped_images[data_info['img_path']] += 1
            action = (
                'a black image stands in for it'
                if self.test_mode
                else 'skipped, another image is drawn'
            )
            print_log(
                f'{err}; {action} (bad image {sum(self.skipped_images.values())} in this '
                f'process; CocoDataset(strict=True) raises instead)',
                logger='current',
                level=logging.WARNING,
            )
            if not self.test_mode:
                return None
            data_info['img_placeholder'] = True
            return self.pipeline(data_info)

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


def _is_positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1


def _checked_segmentation(segm: Any, img: dict, where: str, report: ParseReport) -> Any:
    """A COCO segmentation with its degenerate polygons removed, or None (counted) if unusable."""
    if isinstance(segm, list) and segm and all(isinstance(p, list) for p in segm):
        polygons = valid_polygons(segm)
        if len(polygons) < len(segm):
            counts = [len(p) / 2 for p in segm]
            report.add('bad_polygon', f'{where}: polygon point counts {counts}')
        return polygons or None
    if isinstance(segm, dict) and 'counts' in segm and 'size' in segm:
        size = list(segm['size']) if isinstance(segm['size'], (list, tuple)) else segm['size']
        if size == [img['height'], img['width']]:
            return segm
        report.add(
            'bad_mask',
            f'{where}: RLE size {size} is not the image size {[img["height"], img["width"]]}',
        )
        return None
    report.add('bad_mask', f'{where}: segmentation {str(segm)[:60]} is not polygons or an RLE')
    return None
