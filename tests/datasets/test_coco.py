"""CocoDataset: parsing, label mapping, filtering and bad input, on hand-written and real files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from instseg.datasets import CocoDataset
from instseg.datasets import coco as coco_module
from instseg.registry import DATASETS

CLASSES = ('cat', 'dog', 'bird')


def _compressed_rle(height: int, width: int, y0: int, y1: int, x0: int, x1: int) -> dict:
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    return dict(size=[height, width], counts=rle['counts'].decode())


def _tiny_coco() -> dict:
    """4 images (80x100 with 7 annotations, an empty one, a 20x30 one, a crowd-only one)."""
    polygon = [[10.0, 10.0, 30.0, 10.0, 30.0, 40.0, 10.0, 40.0]]
    # Uncompressed RLE (column-major run lengths) of an 80x100 canvas: 200 off, 50 on, rest off.
    uncompressed = dict(size=[80, 100], counts=[200, 50, 80 * 100 - 250])
    anns = [
        dict(id=11, image_id=1, category_id=5, bbox=[10, 10, 20, 30], area=600,
             segmentation=polygon, iscrowd=0),
        dict(id=12, image_id=1, category_id=2, bbox=[40, 20, 10, 5], area=50,
             segmentation=_compressed_rle(80, 100, 20, 25, 40, 50), iscrowd=0),
        dict(id=13, image_id=1, category_id=9, bbox=[2, 40, 1, 50], area=50,
             segmentation=uncompressed, iscrowd=1),
        dict(id=14, image_id=1, category_id=2, bbox=[5, 5, 0.5, 10], area=5,
             segmentation=[[5, 5, 5.5, 5, 5.5, 15]], iscrowd=0),  # degenerate: w < 1
        dict(id=15, image_id=99, category_id=2, bbox=[1, 1, 5, 5], area=25,
             segmentation=[[1, 1, 6, 1, 6, 6]], iscrowd=0),  # dangling image id
        dict(id=16, image_id=1, category_id=42, bbox=[1, 1, 5, 5], area=25,
             segmentation=[[1, 1, 6, 1, 6, 6]], iscrowd=0),  # unknown category
        dict(id=17, image_id=3, category_id=2, bbox=[2, 2, 10, 10], area=100,
             segmentation=[[2, 2, 12, 2, 12, 12, 2, 12]], iscrowd=0),
        dict(id=18, image_id=4, category_id=5, bbox=[0, 0, 30, 30], area=900,
             segmentation=_compressed_rle(64, 64, 0, 30, 0, 30), iscrowd=1),
    ]  # fmt: skip
    return dict(
        images=[
            dict(id=1, file_name='a.png', height=80, width=100),
            dict(id=2, file_name='b.png', height=64, width=64),
            dict(id=3, file_name='c.png', height=20, width=30),
            dict(id=4, file_name='d.png', height=64, width=64),
        ],
        annotations=anns,
        # Non-contiguous ids, listed in an order different from CLASSES.
        categories=[
            dict(id=9, name='bird'),
            dict(id=2, name='cat'),
            dict(id=5, name='dog'),
        ],
    )


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    (tmp_path / 'annotations').mkdir()
    coco = _tiny_coco()
    (tmp_path / 'annotations' / 'tiny.json').write_text(json.dumps(coco))
    (tmp_path / 'images').mkdir()
    for img in coco['images']:
        pixels = np.zeros((img['height'], img['width'], 3), np.uint8)
        cv2.imwrite(str(tmp_path / 'images' / img['file_name']), pixels)
    return tmp_path


def _build(root: Path, **kwargs) -> CocoDataset:
    cfg = dict(
        type='CocoDataset',
        data_root=str(root),
        ann_file='annotations/tiny.json',
        data_prefix=dict(img='images/'),
        metainfo=dict(classes=CLASSES),
        test_mode=True,
        # mmengine's serialisation runs a full gc.collect() (~1 s in a test process).
        serialize_data=False,
    )
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_parses_records_with_labels_in_class_order(tiny_root: Path) -> None:
    ds = _build(tiny_root)
    assert len(ds) == 4
    assert ds.metainfo['cat_ids'] == [2, 5, 9]
    info = ds.get_data_info(0)
    assert info['img_path'] == str(tiny_root / 'images' / 'a.png')
    assert (info['img_id'], info['height'], info['width']) == (1, 80, 100)
    dog, cat, bird = info['instances']
    assert dog == dict(
        bbox=[10.0, 10.0, 30.0, 40.0],
        bbox_label=1,
        ignore_flag=0,
        mask=[[10.0, 10.0, 30.0, 10.0, 30.0, 40.0, 10.0, 40.0]],
    )
    assert (cat['bbox'], cat['bbox_label'], cat['ignore_flag']) == ([40.0, 20.0, 50.0, 25.0], 0, 0)
    assert isinstance(cat['mask']['counts'], str)
    assert (bird['bbox_label'], bird['ignore_flag']) == (2, 1)
    assert bird['mask']['counts'] == [200, 50, 7750]
    assert ds.get_data_info(1)['instances'] == []
    assert ds.get_cat_ids(0) == [1, 0, 2]
    problems = {kind: n for kind, n in ds.parse_counts.items() if n}
    assert problems == dict(
        dangling_image=1, bad_category=1, empty_box=1, images_without_annotations=1
    )


def test_custom_class_subset_keeps_only_its_categories(tiny_root: Path) -> None:
    ds = _build(tiny_root, metainfo=dict(classes=('bird', 'dog')))
    assert ds.metainfo['cat_ids'] == [9, 5]
    assert ds.metainfo['classes'] == ('bird', 'dog')
    assert ds.get_cat_ids(0) == [1, 0]  # dog, bird; the cat annotation is left out
    assert [i['ignore_flag'] for i in ds.get_data_info(0)['instances']] == [0, 1]
    assert ds.get_cat_ids(2) == []


def test_unknown_class_name_is_a_clear_error(tiny_root: Path) -> None:
    with pytest.raises(ValueError, match=r"'zebra'.*tiny\.json"):
        _build(tiny_root, metainfo=dict(classes=('cat', 'zebra')))


def test_missing_annotation_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='nowhere.json'):
        _build(tmp_path, ann_file='nowhere.json')


def test_summary_of_dropped_and_skipped_items_is_logged(
    tiny_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = []
    monkeypatch.setattr(coco_module, 'print_log', lambda msg, **kw: messages.append(msg))
    _build(tiny_root)
    assert len(messages) == 1
    summary = messages[0]
    assert 'tiny.json: 4 images, 5 instances of 3 classes; 1 images without annotations' in summary
    assert '3 problems' in summary
    assert '1 empty_box' in summary and 'ann id 14 (' in summary and 'a.png, img_id 1)' in summary
    assert '1 dangling_image' in summary and 'ann id 15: no image has id 99' in summary
    assert '1 bad_category' in summary and 'category_id 42 is not in categories' in summary


@pytest.mark.parametrize(
    ('filter_cfg', 'test_mode', 'expected_ids'),
    [
        (dict(filter_empty_gt=True, min_size=32), False, [1]),
        (dict(filter_empty_gt=False, min_size=32), False, [1, 2, 4]),
        (dict(filter_empty_gt=True, min_size=0), False, [1, 3]),  # 4 holds only a crowd region
        (None, False, [1, 2, 3, 4]),
        (dict(filter_empty_gt=True, min_size=32), True, [1, 2, 3, 4]),  # no filtering in test
    ],
)
def test_filtering(tiny_root: Path, filter_cfg, test_mode, expected_ids) -> None:
    ds = _build(tiny_root, filter_cfg=filter_cfg, test_mode=test_mode)
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == expected_ids


def test_lazy_init_and_unserialized_give_the_same_records(tiny_root: Path) -> None:
    lazy = _build(tiny_root, lazy_init=True, serialize_data=True)
    assert 'cat_ids' not in lazy.metainfo
    lazy.full_init()
    plain = _build(tiny_root)
    assert lazy.metainfo['cat_ids'] == plain.metainfo['cat_ids'] == [2, 5, 9]
    assert [lazy.get_data_info(i) for i in range(4)] == [plain.get_data_info(i) for i in range(4)]


def test_default_metainfo_is_coco() -> None:
    meta = CocoDataset.METAINFO
    assert len(meta['classes']) == 80 and len(meta['palette']) == 80
    assert meta['classes'][0] == 'person' and meta['classes'][-1] == 'toothbrush'
    assert len(set(meta['palette'])) == 80


def _expected_instances(coco: dict) -> Counter:
    """(image id, category id, iscrowd) of every annotation CocoDataset must keep."""
    sizes = {img['id']: (img['width'], img['height']) for img in coco['images']}
    kept = Counter()
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        width, height = sizes[ann['image_id']]
        inside = min(x + w, width) > max(x, 0) and min(y + h, height) > max(y, 0)
        if w >= 1 and h >= 1 and ann['area'] > 0 and inside:
            kept[(ann['image_id'], ann['category_id'], ann['iscrowd'])] += 1
    return kept


def _parsed_instances(ds: CocoDataset) -> Counter:
    cat_ids = ds.metainfo['cat_ids']
    parsed = Counter()
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        for inst in info['instances']:
            parsed[(info['img_id'], cat_ids[inst['bbox_label']], inst['ignore_flag'])] += 1
    return parsed


def test_coco_tiny_matches_its_json(coco_tiny: Path) -> None:
    ann_file = coco_tiny / 'annotations' / 'instances_val2017.json'
    coco = json.loads(ann_file.read_text())
    ds = CocoDataset(
        data_root=str(coco_tiny),
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        serialize_data=False,
    )
    assert len(ds) == len(coco['images']) == 80
    assert ds.metainfo['cat_ids'] == sorted(c['id'] for c in coco['categories'])
    assert max(ds.metainfo['cat_ids']) == 90
    expected = _expected_instances(coco)
    assert _parsed_instances(ds) == expected
    assert sum(expected.values()) == sum(len(ds.get_data_info(i)['instances']) for i in range(80))
    crowd = [inst for i in range(80) for inst in ds.get_data_info(i)['instances']
             if inst['ignore_flag']]  # fmt: skip
    assert len(crowd) == sum(a['iscrowd'] for a in coco['annotations']) > 0
    assert all(isinstance(inst['mask']['counts'], list) for inst in crowd)
    assert all(Path(ds.get_data_info(i)['img_path']).is_file() for i in range(80))


def test_nuclei_matches_its_json(nuclei: Path) -> None:
    coco = json.loads((nuclei / 'annotations' / 'instances_all.json').read_text())
    ds = CocoDataset(
        data_root=str(nuclei),
        ann_file='annotations/instances_all.json',
        data_prefix=dict(img='images/'),
        metainfo=dict(classes=('nucleus',)),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        serialize_data=False,
    )
    assert len(ds) == len(coco['images']) == 24
    per_image = Counter(a['image_id'] for a in coco['annotations'])
    counts = {ds.get_data_info(i)['img_id']: len(ds.get_data_info(i)['instances'])
              for i in range(len(ds))}  # fmt: skip
    assert counts == dict(per_image)
    assert max(counts.values()) == 1862
    assert sum(counts.values()) == 12428 + 2169
