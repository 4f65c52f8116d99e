"""Bad data: each kind is dropped with a message naming the file and id, counted, and never
crashes a run unless ``strict``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from torch.utils.data import DataLoader

from instseg.datasets import CocoDataset
from instseg.datasets import coco as coco_module
from instseg.datasets.image_io import BadImageError, MissingImageError
from instseg.datasets.transforms import LoadAnnotations, LoadImageFromFile, PackDetInputs

SQUARE = [[4.0, 4.0, 20.0, 4.0, 20.0, 20.0, 4.0, 20.0]]


def _ann(ann_id: int, image_id: int, bbox: list | None = None, **kwargs) -> dict:
    ann = dict(
        id=ann_id,
        image_id=image_id,
        category_id=1,
        bbox=[4, 4, 16, 16] if bbox is None else bbox,
        area=256,
        segmentation=SQUARE,
        iscrowd=0,
    )
    ann.update(kwargs)
    return ann


def _write(root: Path, anns: list[dict], images: list[dict] | None = None,
           skip_files: tuple[str, ...] = ()) -> None:  # fmt: skip
    """A COCO file with 3 images of 32x48 (unless ``images``) and their PNGs."""
    if images is None:
        images = [dict(id=i, file_name=f'{i}.png', height=32, width=48) for i in (1, 2, 3)]
    coco = dict(images=images, annotations=anns, categories=[dict(id=1, name='cell')])
    (root / 'ann.json').write_text(json.dumps(coco))
    (root / 'img').mkdir(exist_ok=True)
    for img in images:
        if img.get('file_name') not in skip_files and img.get('height', 0) > 0:
            pixels = np.full((img['height'], img['width'], 3), img['id'], np.uint8)
            cv2.imwrite(str(root / 'img' / img['file_name']), pixels)


def _dataset(root: Path, log: list | None = None, **kwargs) -> CocoDataset:
    kwargs.setdefault(
        'pipeline', [LoadImageFromFile(), LoadAnnotations(with_mask=True), PackDetInputs()]
    )
    return CocoDataset(
        ann_file=str(root / 'ann.json'),
        data_prefix=dict(img=str(root / 'img')),
        metainfo=dict(classes=('cell',)),
        serialize_data=False,
        **kwargs,
    )


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    messages: list[str] = []
    monkeypatch.setattr(coco_module, 'print_log', lambda msg, **kw: messages.append(msg))
    return messages


def _problems(ds: CocoDataset) -> dict[str, int]:
    return {kind: n for kind, n in ds.parse_counts.items() if n}


def test_clean_data_reports_no_problems(tmp_path: Path, log: list[str]) -> None:
    _write(tmp_path, [_ann(1, 1), _ann(2, 2), _ann(3, 3)])
    ds = _dataset(tmp_path)
    assert _problems(ds) == {}
    assert log == [f'{tmp_path / "ann.json"}: 3 images, 3 instances of 1 classes; 0 images '
                   'without annotations; no bad data']  # fmt: skip


def test_missing_image_file_is_dropped_at_load(tmp_path: Path, log: list[str]) -> None:
    _write(tmp_path, [_ann(1, 1), _ann(2, 2)], skip_files=('2.png',))
    ds = _dataset(tmp_path)
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == [1, 3]
    assert _problems(ds) == dict(missing_image_file=1, images_without_annotations=1)
    assert f'{tmp_path / "img" / "2.png"} (img_id 2) does not exist' in log[0]
    with pytest.raises(ValueError, match=r'1 missing_image_file.*\n.*2\.png \(img_id 2\)'):
        _dataset(tmp_path, strict=True)


def test_annotation_of_an_unknown_image_id(tmp_path: Path, log: list[str]) -> None:
    _write(tmp_path, [_ann(1, 1), _ann(7, 42)])
    ds = _dataset(tmp_path)
    assert _problems(ds) == dict(dangling_image=1, images_without_annotations=2)
    assert 'ann id 7: no image has id 42' in log[0]
    assert sum(len(ds.get_data_info(i)['instances']) for i in range(3)) == 1


@pytest.mark.parametrize(
    ('bbox', 'area', 'kind'),
    [
        ([4, 4, 0, 10], 0, 'empty_box'),  # zero width
        ([4, 4, 10, 10], 0, 'empty_box'),  # zero area
        ([4, 4, 0.5, 10], 5, 'empty_box'),  # narrower than a pixel
        ([60, 4, 10, 10], 100, 'box_outside_image'),  # right of the 48 px wide image
        ([-20, -20, 10, 10], 100, 'box_outside_image'),
        ([4, 4, 10], 100, 'bad_box'),
        ([4, 4, float('nan'), 10], 100, 'bad_box'),
        (None, 100, 'bad_box'),
    ],
)
def test_unusable_boxes_are_skipped(tmp_path: Path, log: list[str], bbox, area, kind) -> None:
    bad = _ann(2, 1, area=area)
    bad['bbox'] = bbox
    _write(tmp_path, [_ann(1, 1), bad])
    ds = _dataset(tmp_path)
    assert _problems(ds) == {kind: 1, 'images_without_annotations': 2}
    assert len(ds.get_data_info(0)['instances']) == 1
    assert f'ann id 2 ({tmp_path / "img" / "1.png"}, img_id 1): bbox' in log[0]


def test_polygons_with_fewer_than_3_points(tmp_path: Path, log: list[str]) -> None:
    two_points = [4.0, 4.0, 20.0, 20.0]
    _write(tmp_path, [
        _ann(1, 1, segmentation=[two_points, SQUARE[0]]),  # keeps its valid polygon
        _ann(2, 1, segmentation=[two_points]),  # nothing left: skipped
    ])  # fmt: skip
    ds = _dataset(tmp_path)
    assert _problems(ds) == dict(bad_polygon=2, images_without_annotations=2)
    assert [inst['mask'] for inst in ds.get_data_info(0)['instances']] == [SQUARE]
    path = tmp_path / 'img' / '1.png'
    assert f'ann id 1 ({path}, img_id 1): polygon point counts [2.0, 4.0]' in log[0]
    assert f'ann id 2 ({path}, img_id 1): polygon point counts [2.0]' in log[0]
    sample = ds[0]['data_samples']
    assert sample.gt_instances.masks.areas.tolist() == [256]


def test_malformed_and_missized_masks(tmp_path: Path, log: list[str]) -> None:
    wrong_size = mask_utils.encode(np.asfortranarray(np.ones((10, 10), np.uint8)))
    wrong_size['counts'] = wrong_size['counts'].decode()
    no_segm = _ann(3, 1)
    del no_segm['segmentation']
    _write(tmp_path, [_ann(1, 1), _ann(2, 1, segmentation=wrong_size), no_segm,
                      _ann(4, 1, segmentation='oops'), _ann(5, 1, segmentation=[]),
                      _ann(6, 1, segmentation=SQUARE[0])])  # fmt: skip
    ds = _dataset(tmp_path)
    assert _problems(ds) == dict(bad_mask=5, images_without_annotations=2)
    assert 'RLE size [10, 10] is not the image size [32, 48]' in log[0]
    assert len(ds.get_data_info(0)['instances']) == 1


def test_box_only_file_keeps_instances_without_masks(tmp_path: Path) -> None:
    anns = [_ann(1, 1), _ann(2, 2)]
    for ann in anns:
        del ann['segmentation']
    _write(tmp_path, anns)
    ds = _dataset(tmp_path, pipeline=[LoadImageFromFile(), LoadAnnotations(), PackDetInputs()])
    assert _problems(ds) == dict(images_without_annotations=1)
    assert ds[0]['data_samples'].gt_instances.bboxes.tolist() == [[4.0, 4.0, 20.0, 20.0]]


def test_duplicated_image_and_annotation_ids(tmp_path: Path, log: list[str]) -> None:
    images = [dict(id=i, file_name=f'{name}.png', height=32, width=48)
              for i, name in ((1, 'a'), (2, 'b'), (1, 'c'))]  # fmt: skip
    _write(tmp_path, [_ann(1, 1), _ann(1, 2), _ann(2, 2)], images=images)
    ds = _dataset(tmp_path)
    names = [Path(ds.get_data_info(i)['img_path']).name for i in range(len(ds))]
    assert names == ['a.png', 'b.png']
    assert _problems(ds) == dict(duplicate_image_id=1, duplicate_ann_id=1)
    assert 'img_id 1 (' in log[0] and 'c.png) was used before by a.png' in log[0]
    assert 'ann id 1 (img_id 2) repeats' in log[0]


def test_category_not_in_categories(tmp_path: Path, log: list[str]) -> None:
    _write(tmp_path, [_ann(1, 1), _ann(2, 1, category_id=5)])
    ds = _dataset(tmp_path)
    assert _problems(ds) == dict(bad_category=1, images_without_annotations=2)
    assert f'ann id 2 ({tmp_path / "img" / "1.png"}): category_id 5 is not in categories' in log[0]


def test_bad_image_entries(tmp_path: Path, log: list[str]) -> None:
    images = [dict(id=1, file_name='1.png', height=32, width=48), dict(id=2, file_name='2.png'),
              dict(id=3, file_name='3.png', height=0, width=48)]  # fmt: skip
    _write(tmp_path, [_ann(1, 1)], images=images)
    ds = _dataset(tmp_path)
    assert len(ds) == 1 and _problems(ds) == dict(bad_image_entry=2)
    assert "lacks ['height', 'width']" in log[0] and 'has a side < 1' in log[0]


def test_images_without_annotations_are_counted_and_kept(tmp_path: Path, log: list[str]) -> None:
    _write(tmp_path, [_ann(1, 2)])
    ds = _dataset(tmp_path)
    assert len(ds) == 3 and _problems(ds) == dict(images_without_annotations=2)
    assert '2 images without annotations; no bad data' in log[0]
    train = _dataset(tmp_path, filter_cfg=dict(filter_empty_gt=True))
    assert len(train) == 1


def test_strict_load_raises_with_every_problem(tmp_path: Path) -> None:
    _write(tmp_path, [_ann(1, 1), _ann(1, 2), _ann(2, 9), _ann(3, 3, bbox=[0, 0, 0, 0])])
    with pytest.raises(ValueError) as info:
        _dataset(tmp_path, strict=True)
    message = str(info.value)
    for text in ('3 problems', '1 duplicate_ann_id', '1 dangling_image', '1 empty_box',
                 'ann id 2: no image has id 9', 'strict=True'):  # fmt: skip
        assert text in message


def test_examples_are_capped_but_all_are_counted(tmp_path: Path, log: list[str]) -> None:
    _write(tmp_path, [_ann(1, 1)] + [_ann(i, 50 + i) for i in range(2, 10)])
    ds = _dataset(tmp_path)
    assert ds.parse_counts['dangling_image'] == 8
    assert log[0].count('no image has id') == 5 and '... and 3 more' in log[0]


def _corrupt(root: Path, name: str) -> None:
    (root / 'img' / name).write_bytes(b'\x89PNG\r\n\x1a\n truncated')


def test_corrupt_image_mid_epoch_is_skipped_and_counted(tmp_path: Path, log: list[str]) -> None:
    _write(tmp_path, [_ann(1, 1), _ann(2, 2), _ann(3, 3)])
    ds = _dataset(tmp_path)
    _corrupt(tmp_path, '2.png')  # after loading, as when a file goes bad during a long run
    loader = DataLoader(ds, batch_size=1, collate_fn=lambda batch: batch)
    img_ids = [batch[0]['data_samples'].img_id for _ in range(2) for batch in loader]
    assert len(img_ids) == 6 and 2 not in img_ids  # every batch filled, from other images
    corrupt_path = str(tmp_path / 'img' / '2.png')
    # Twice as the epoch's own index, and again whenever the refetch draws it at random.
    skips = ds.skipped_images[corrupt_path]
    assert skips >= 2 and list(ds.skipped_images) == [corrupt_path]
    warnings = [m for m in log if 'skipped, another image is drawn' in m]
    assert len(warnings) == skips
    assert f'{corrupt_path}: not a decodable image' in warnings[-1]
    assert f'(bad image {skips} in this process' in warnings[-1]


def test_image_deleted_after_load_is_skipped(tmp_path: Path, log: list[str]) -> None:
    _write(tmp_path, [_ann(1, 1), _ann(2, 2)])
    ds = _dataset(tmp_path)
    (tmp_path / 'img' / '1.png').unlink()
    assert ds[0]['data_samples'].img_id in (2, 3)
    assert f'{tmp_path / "img" / "1.png"}: image file not found' in log[-1]


def test_strict_run_raises_on_a_corrupt_image(tmp_path: Path) -> None:
    _write(tmp_path, [_ann(1, 1)])
    ds = _dataset(tmp_path, strict=True)
    _corrupt(tmp_path, '1.png')
    with pytest.raises(BadImageError, match=r'1\.png: not a decodable image'):
        ds[0]
    (tmp_path / 'img' / '1.png').unlink()
    with pytest.raises(MissingImageError, match=r'1\.png: image file not found'):
        ds[0]


def test_test_mode_keeps_every_image_id_with_a_black_stand_in(tmp_path: Path, log) -> None:
    _write(tmp_path, [_ann(1, 1)])
    pipeline = [LoadImageFromFile(), PackDetInputs(meta_keys=('img_id', 'ori_shape'))]
    ds = _dataset(tmp_path, test_mode=True, pipeline=pipeline)
    _corrupt(tmp_path, '2.png')
    packed = [ds[i] for i in range(3)]
    assert [p['data_samples'].img_id for p in packed] == [1, 2, 3]
    assert packed[1]['inputs'].shape == (3, 32, 48) and packed[1]['inputs'].max() == 0
    assert packed[2]['inputs'].max() == 3  # the real image 3
    assert 'a black image stands in for it' in log[-1]


def test_image_of_another_size_than_its_record_is_skipped(tmp_path: Path, log) -> None:
    _write(tmp_path, [_ann(1, 1), _ann(2, 2)])
    cv2.imwrite(str(tmp_path / 'img' / '1.png'), np.zeros((48, 32, 3), np.uint8))
    ds = _dataset(tmp_path)
    assert ds[0]['data_samples'].img_id in (2, 3)
    assert '1.png: image is 48x32 (h x w, after EXIF orientation) but its record (img_id 1) ' \
           'says 32x48; the sizes are transposed' in log[-1]  # fmt: skip


def test_a_misspelled_transform_type_names_the_closest_ones(tmp_path) -> None:
    from instseg.registry import DATASETS

    pipeline = [dict(type='LoadImageFromFlie'), dict(type='PackDetInputs')]
    with pytest.raises(KeyError, match="'LoadImageFromFlie'.*Closest names: LoadImageFromFile"):
        DATASETS.build(dict(type='CocoDataset', ann_file=str(tmp_path / 'a.json'),
                            pipeline=pipeline, lazy_init=True))  # fmt: skip
