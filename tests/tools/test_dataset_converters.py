"""tools/dataset_converters: each layout converts to COCO whose masks decode back pixel-identical,
and the result loads in CocoDataset."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from tool_helpers import load_tool

from instseg.datasets import CocoDataset
from instseg.datasets.converters import edge_polygons, window_annotation
from instseg.datasets.transforms import LoadAnnotations, LoadImageFromFile, PackDetInputs

# pycocotools' decode trips numpy 2's __array__(copy=...) deprecation on every call.
pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning:pycocotools')
TOOLS = ('dsb2018_to_coco', 'instance_maps_to_coco', 'label_images_to_coco', 'split_coco')


def _tool(name: str) -> ModuleType:
    return load_tool(f'dataset_converters/{name}.py')


def _decode(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    else:
        rle = dict(segmentation, counts=segmentation['counts'].encode())
    return mask_utils.decode(rle).astype(bool)


def _decoded_masks(coco: dict, image_id: int) -> list[np.ndarray]:
    img = next(i for i in coco['images'] if i['id'] == image_id)
    anns = [a for a in coco['annotations'] if a['image_id'] == image_id]
    return [_decode(a['segmentation'], img['height'], img['width']) for a in anns]


def _blob_map(rng: np.random.Generator, height: int, width: int, num: int) -> np.ndarray:
    """An instance-id map with ``num`` ellipses (later ones on top), one with a hole."""
    labels = np.zeros((height, width), np.uint16)
    for k in range(1, num + 1):
        centre = (int(rng.integers(8, width - 8)), int(rng.integers(8, height - 8)))
        axes = (int(rng.integers(3, 12)), int(rng.integers(3, 12)))
        cv2.ellipse(labels, centre, axes, float(rng.uniform(0, 180)), 0, 360, k, -1)
    labels[labels == 1] = 0
    cv2.circle(labels, (12, 12), 9, 1, -1)
    cv2.circle(labels, (12, 12), 3, 0, -1)  # instance 1 is a ring
    return labels


def _check_against_map(coco: dict, image_id: int, labels: np.ndarray, category_id: int) -> None:
    anns = [a for a in coco['annotations']
            if a['image_id'] == image_id and a['category_id'] == category_id]  # fmt: skip
    ids = [k for k in np.unique(labels) if k]
    assert len(anns) == len(ids)
    for ann, k in zip(anns, ids, strict=True):
        expected = labels == k
        np.testing.assert_array_equal(_decode(ann['segmentation'], *labels.shape), expected)
        ys, xs = np.nonzero(expected)
        assert ann['area'] == expected.sum()
        assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


@pytest.mark.parametrize('name', TOOLS)
def test_help_has_an_example(name: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        _tool(name).main(['--help'])
    assert info.value.code == 0
    assert f'example: python tools/dataset_converters/{name}.py' in capsys.readouterr().out


def _write_dsb(root: Path, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """Two DSB folders (an RGBA and a gray image) with one binary PNG per instance."""
    expected = {}
    for sample, channels in (('a1', 4), ('b2', 0)):
        labels = _blob_map(rng, 48, 64, 6)
        (root / sample / 'images').mkdir(parents=True)
        (root / sample / 'masks').mkdir()
        shape = (48, 64, channels) if channels else (48, 64)
        cv2.imwrite(str(root / sample / 'images' / f'{sample}.png'), np.full(shape, 90, np.uint8))
        masks = [labels == k for k in np.unique(labels) if k]
        for i, mask in enumerate(masks):
            cv2.imwrite(str(root / sample / 'masks' / f'm{i}.png'), mask.astype(np.uint8) * 255)
        cv2.imwrite(str(root / sample / 'masks' / 'zz_empty.png'), np.zeros((48, 64), np.uint8))
        expected[f'{sample}/images/{sample}.png'] = masks
    return expected


@pytest.mark.parametrize('mask_format', ['rle', 'polygon'])
def test_dsb2018_round_trip(tmp_path: Path, mask_format: str, capsys) -> None:
    expected = _write_dsb(tmp_path / 'dsb', np.random.default_rng(0))
    out = tmp_path / 'ann.json'
    coco = _tool('dsb2018_to_coco').main(
        [str(tmp_path / 'dsb'), str(out), '--mask-format', mask_format]
    )
    assert json.loads(out.read_text()) == coco
    assert [img['file_name'] for img in coco['images']] == list(expected)
    assert coco['categories'] == [dict(id=1, name='nucleus')]
    for img in coco['images']:
        decoded = _decoded_masks(coco, img['id'])
        assert len(decoded) == len(expected[img['file_name']])
        for got, want in zip(decoded, expected[img['file_name']], strict=True):
            np.testing.assert_array_equal(got, want)
    kinds = [type(a['segmentation']) for a in coco['annotations']]
    if mask_format == 'rle':
        assert set(kinds) == {dict}
    else:  # the two rings keep RLE: a polygon cannot hold a hole
        assert kinds.count(dict) == 2 and kinds.count(list) == len(kinds) - 2
    printed = capsys.readouterr().out
    assert f'wrote {out}: 2 images, {len(kinds)} instances (nucleus: {len(kinds)})' in printed
    assert 'skipped 2 empty mask files' in printed
    if mask_format == 'polygon':
        assert '2 instances with holes kept as RLE' in printed


def test_dsb2018_output_trains_through_the_pipeline(tmp_path: Path) -> None:
    _write_dsb(tmp_path / 'dsb', np.random.default_rng(1))
    _tool('dsb2018_to_coco').main([str(tmp_path / 'dsb'), str(tmp_path / 'ann.json')])
    ds = CocoDataset(
        ann_file=str(tmp_path / 'ann.json'),
        data_prefix=dict(img=str(tmp_path / 'dsb')),
        metainfo=dict(classes=('nucleus',)),
        pipeline=[LoadImageFromFile(), LoadAnnotations(with_mask=True), PackDetInputs()],
        serialize_data=False,
        strict=True,
    )
    sample = ds[0]
    assert sample['inputs'].shape == (3, 48, 64)
    assert len(sample['data_samples'].gt_instances) == 6


def test_instance_maps_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    maps = {}
    for sample in ('s1', 's2'):
        (tmp_path / sample).mkdir()
        cv2.imwrite(
            str(tmp_path / sample / 'image.tif'), rng.integers(0, 4000, (40, 56), np.uint16)
        )
        for k in (1, 2):
            labels = _blob_map(rng, 40, 56, 5)
            cv2.imwrite(str(tmp_path / sample / f'class{k}.tif'), labels)
            maps[sample, k] = labels
    out = tmp_path / 'ann' / 'all.json'
    coco = _tool('instance_maps_to_coco').main(
        [str(tmp_path), str(out), '--classes', 'tumour, stroma', '--mask-format', 'polygon']
    )
    assert coco['categories'] == [dict(id=1, name='tumour'), dict(id=2, name='stroma')]
    assert [img['file_name'] for img in coco['images']] == ['s1/image.tif', 's2/image.tif']
    assert [a['id'] for a in coco['annotations']] == list(range(1, len(coco['annotations']) + 1))
    for img in coco['images']:
        for k in (1, 2):
            _check_against_map(coco, img['id'], maps[img['file_name'][:2], k], k)
    (tmp_path / 's2' / 'class2.tif').unlink()
    with pytest.raises(FileNotFoundError, match=r's2/class2\.tif is missing \(2 classes given'):
        _tool('instance_maps_to_coco').main([str(tmp_path), str(out), '--classes', 'a,b'])


def test_label_images_round_trip_and_size_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    (tmp_path / 'img').mkdir()
    (tmp_path / 'lab').mkdir()
    labels = _blob_map(rng, 36, 50, 8).astype(np.int32) * 1000  # sparse, large ids
    cv2.imwrite(str(tmp_path / 'img' / 'x.jpg'), np.zeros((36, 50, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'lab' / 'x.tif'), labels.astype(np.float32))  # float, integral
    coco = _tool('label_images_to_coco').main(
        [str(tmp_path / 'img'), str(tmp_path / 'lab'), str(tmp_path / 'a.json')]
    )
    assert coco['images'] == [dict(id=1, file_name='x.jpg', height=36, width=50)]
    _check_against_map(coco, 1, labels, 1)
    cv2.imwrite(str(tmp_path / 'lab' / 'x.tif'), np.zeros((50, 36), np.uint16))
    with pytest.raises(
        ValueError, match=r'x\.tif is 50x36 \(h x w\) but its image .*x\.jpg is 36x50'
    ):
        _tool('label_images_to_coco').main(
            [str(tmp_path / 'img'), str(tmp_path / 'lab'), str(tmp_path / 'a.json')]
        )
    assert json.loads((tmp_path / 'a.json').read_text()) == coco  # the old file is intact


def test_label_images_on_a_crop_of_the_real_nuclei(tmp_path: Path, nuclei: Path) -> None:
    """A 300x260 crop of a real 16-bit label map matches the shipped COCO masks cut the same way."""
    name = 'TCGA-21-5784-01Z-00-DX1.png'
    y0, x0, h, w = 350, 420, 300, 260
    labels = cv2.imread(str(nuclei / 'label_maps' / name), cv2.IMREAD_UNCHANGED)
    image = cv2.imread(str(nuclei / 'images' / name))
    assert labels.dtype == np.uint16
    (tmp_path / 'img').mkdir()
    (tmp_path / 'lab').mkdir()
    cv2.imwrite(str(tmp_path / 'img' / name), image[y0 : y0 + h, x0 : x0 + w])
    cv2.imwrite(str(tmp_path / 'lab' / name), labels[y0 : y0 + h, x0 : x0 + w])
    coco = _tool('label_images_to_coco').main(
        [str(tmp_path / 'img'), str(tmp_path / 'lab'), str(tmp_path / 'a.json'), '--class-name',
         'nucleus']
    )  # fmt: skip
    converted = _decoded_masks(coco, 1)

    shipped = json.loads((nuclei / 'annotations' / 'instances_all.json').read_text())
    img_id = next(i['id'] for i in shipped['images'] if i['file_name'] == name)
    reference = []
    for ann in shipped['annotations']:
        bx, by, bw, bh = ann['bbox']
        inside = bx < x0 + w and bx + bw > x0 and by < y0 + h and by + bh > y0
        if ann['image_id'] == img_id and inside:  # decode only the nuclei near the crop
            reference.append(_decode(ann['segmentation'], 1000, 1000)[y0 : y0 + h, x0 : x0 + w])
    reference = [m for m in reference if m.any()]  # a box can touch the crop with no pixel in it
    assert len(converted) == len(reference) > 30

    def key(mask: np.ndarray) -> bytes:
        return np.packbits(mask).tobytes()

    assert sorted(map(key, converted)) == sorted(map(key, reference))


def test_polygons_are_exact_without_holes() -> None:
    rng = np.random.default_rng(4)
    tested = 0
    for _ in range(300):
        window = rng.random((9, 11)) < rng.uniform(0.3, 0.9)
        # Keep masks without holes: no background pixel cut off from the border.
        inverse = np.pad(~window, 1, constant_values=True).astype(np.uint8)
        if cv2.connectedComponents(inverse, connectivity=4)[0] > 2 or not window.any():
            continue
        tested += 1
        fields, fallback = window_annotation(window, 5, 7, 30, 40, 'polygon')
        assert not fallback and isinstance(fields['segmentation'], list)
        canvas = np.zeros((30, 40), bool)
        canvas[5:14, 7:18] = window
        np.testing.assert_array_equal(_decode(fields['segmentation'], 30, 40), canvas)
    assert tested > 25
    assert edge_polygons(np.ones((1, 1), bool), 2, 3) == [[3.0, 2.0, 3.0, 3.0, 4.0, 3.0, 4.0, 2.0]]


def _coco_to_split(num_images: int) -> dict:
    images = [dict(id=100 + i, file_name=f'{i}.png', height=8, width=8) for i in range(num_images)]
    anns = [dict(id=7 * i + j, image_id=100 + i, category_id=3, bbox=[0, 0, 2, 2], area=4,
                 segmentation=[[0, 0, 2, 0, 2, 2]], iscrowd=0)
            for i in range(num_images) for j in range(i % 3)]  # fmt: skip
    return dict(info=dict(description='x'), licenses=[], images=images, annotations=anns,
                categories=[dict(id=3, name='cell')])  # fmt: skip


def test_split_coco(tmp_path: Path) -> None:
    coco = _coco_to_split(10)
    (tmp_path / 'instances_all.json').write_text(json.dumps(coco))
    split = _tool('split_coco').main
    train, val = split([str(tmp_path / 'instances_all.json'), '--ratio', '0.7', '--seed', '1'])
    assert json.loads((tmp_path / 'instances_train.json').read_text()) == train
    assert json.loads((tmp_path / 'instances_val.json').read_text()) == val
    assert (len(train['images']), len(val['images'])) == (7, 3)
    train_ids = [img['id'] for img in train['images']]
    val_ids = [img['id'] for img in val['images']]
    assert sorted(train_ids + val_ids) == list(range(100, 110))
    assert train_ids == sorted(train_ids)  # the file's order is kept
    for part, ids in ((train, train_ids), (val, val_ids)):
        assert part['categories'] == coco['categories'] and part['info'] == coco['info']
        expected = [a for a in coco['annotations'] if a['image_id'] in ids]
        assert part['annotations'] == expected  # ids and content preserved
    again, _ = split([str(tmp_path / 'instances_all.json'), '--ratio', '0.7', '--seed', '1',
                      '--out-dir', str(tmp_path / 'b'), '--names', 'tr', 'va'])  # fmt: skip
    assert again == train and (tmp_path / 'b' / 'instances_va.json').is_file()
    other, _ = split([str(tmp_path / 'instances_all.json'), '--ratio', '0.7', '--seed', '2',
                      '--out-dir', str(tmp_path / 'c')])  # fmt: skip
    assert other['images'] != train['images']
    with pytest.raises(ValueError, match='between 0 and 1'):
        split([str(tmp_path / 'instances_all.json'), '--ratio', '1.5'])
