"""The generated shapes dataset: valid COCO, deterministic, atomic, and usable by CocoDataset."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from instseg.datasets import CocoDataset, DemoShapesDataset, generate_shapes_dataset
from instseg.registry import DATASETS

SIZE = 96
# pycocotools' decode trips a numpy 2 DeprecationWarning (its __array__ lacks `copy`).
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()
    }


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('shapes') / 'demo'
    generate_shapes_dataset(root, num_train=12, num_val=4, image_size=SIZE, seed=3)
    return root


def test_layout_and_determinism(shapes_root: Path, tmp_path: Path) -> None:
    again = tmp_path / 'again'
    generate_shapes_dataset(again, num_train=12, num_val=4, image_size=SIZE, seed=3)
    first, second = _files(shapes_root), _files(again)
    pngs = sorted(name for name in first if name.endswith('.png'))
    assert len(pngs) == 16 and pngs[0] == 'train/000000.png' and pngs[-1] == 'val/000003.png'
    assert 'annotations/instances_train.json' in first
    assert 'annotations/instances_val.json' in first
    assert first == second  # byte-identical, no temporary leftovers
    other_seed = tmp_path / 'other'
    generate_shapes_dataset(other_seed, num_train=12, num_val=4, image_size=SIZE, seed=4)
    assert _files(other_seed)['train/000000.png'] != first['train/000000.png']
    # train and val are different images
    assert first['train/000000.png'] != first['val/000000.png']


def test_annotations_are_valid_coco(shapes_root: Path) -> None:
    coco = COCO(str(shapes_root / 'annotations' / 'instances_train.json'))
    assert sorted(coco.getCatIds()) == [1, 3, 5, 7]
    assert [c['name'] for c in coco.loadCats([1, 3, 5, 7])] == [
        'ellipse',
        'rectangle',
        'triangle',
        'ring',
    ]
    formats = Counter()
    for img_id in coco.getImgIds():
        info = coco.imgs[img_id]
        assert (info['height'], info['width']) == (SIZE, SIZE)
        anns = coco.imgToAnns[img_id]
        assert 2 <= len(anns) <= 8
        union = np.zeros((SIZE, SIZE), np.int32)
        for ann in anns:
            mask = coco.annToMask(ann)
            union += mask
            assert ann['area'] == mask.sum() > 0
            rle = mask_utils.encode(np.asfortranarray(mask))
            assert ann['bbox'] == mask_utils.toBbox(rle).tolist()
            kind = 'polygon' if isinstance(ann['segmentation'], list) else 'rle'
            if kind == 'rle':
                assert isinstance(ann['segmentation']['counts'], str)  # compressed
            formats[kind] += 1
        # Occluded parts are not annotated: visible masks never overlap.
        assert union.max() == 1
    assert formats['polygon'] > 0 and formats['rle'] > 0


def test_parses_with_coco_dataset(shapes_root: Path) -> None:
    ds = CocoDataset(
        data_root=str(shapes_root),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=DemoShapesDataset.METAINFO['classes']),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        serialize_data=False,
    )
    assert len(ds) == 4
    assert ds.metainfo['cat_ids'] == [1, 3, 5, 7]
    coco = json.loads((shapes_root / 'annotations' / 'instances_val.json').read_text())
    assert sum(len(ds.get_data_info(i)['instances']) for i in range(4)) == len(coco['annotations'])
    assert all(Path(ds.get_data_info(i)['img_path']).is_file() for i in range(4))


def _demo(root: Path, split: str = 'train', **kwargs) -> DemoShapesDataset:
    cfg = dict(
        type='DemoShapesDataset',
        data_root=str(root),
        ann_file=f'annotations/instances_{split}.json',
        data_prefix=dict(img=f'{split}/'),
        num_images=3,
        image_size=64,
        seed=0,
        serialize_data=False,  # mmengine's serialisation runs a slow gc.collect()
    )
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_demo_dataset_generates_on_first_use(tmp_path: Path) -> None:
    ds = _demo(tmp_path)
    assert len(ds) == 3 and ds.metainfo['classes'] == ('ellipse', 'rectangle', 'triangle', 'ring')
    assert ds.metainfo['cat_ids'] == [1, 3, 5, 7]
    ann_file = tmp_path / 'annotations' / 'instances_train.json'
    stamp = ann_file.stat().st_mtime_ns
    _demo(tmp_path)
    assert ann_file.stat().st_mtime_ns == stamp  # up to date: not rewritten
    assert len(_demo(tmp_path, num_images=5)) == 5  # other arguments: regenerated
    assert sorted(p.name for p in (tmp_path / 'train').iterdir())[-1] == '000004.png'
    # The same split written by generate_shapes_dataset is byte-identical.
    reference = tmp_path / 'reference'
    generate_shapes_dataset(reference, num_train=5, num_val=0, image_size=64, seed=0)
    assert (
        ann_file.read_bytes() == (reference / 'annotations' / 'instances_train.json').read_bytes()
    )


def test_demo_dataset_num_images_per_split(tmp_path: Path) -> None:
    sizes = dict(train=4, val=2)
    assert len(_demo(tmp_path, 'val', num_images=sizes, test_mode=True)) == 2
    assert len(_demo(tmp_path, 'train', num_images=sizes)) == 4
    with pytest.raises(KeyError, match="'test'"):
        _demo(tmp_path, 'test', num_images=sizes)


def test_demo_dataset_reads_a_foreign_file_as_is(tmp_path: Path) -> None:
    generate_shapes_dataset(tmp_path, num_train=2, num_val=0, image_size=64)
    ann_file = tmp_path / 'annotations' / 'instances_train.json'
    coco = json.loads(ann_file.read_text())
    del coco['info']  # no longer marked as generated
    ann_file.write_text(json.dumps(coco))
    assert len(_demo(tmp_path, num_images=7)) == 2
    assert 'info' not in json.loads(ann_file.read_text())


def test_refuses_to_replace_a_folder_with_other_files(tmp_path: Path) -> None:
    (tmp_path / 'train').mkdir()
    (tmp_path / 'train' / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='train'):
        _demo(tmp_path)
    assert (tmp_path / 'train' / 'notes.txt').read_text() == 'mine'


def test_a_folder_of_the_users_own_images_is_never_replaced(tmp_path: Path) -> None:
    # A user's own train/*.png, not yet annotated: the demo dataset must not touch them.
    images = tmp_path / 'train'
    images.mkdir()
    for name in ('cell_a.png', 'cell_b.png'):
        (images / name).write_bytes(b'my image ' + name.encode())
    before = _files(tmp_path)
    with pytest.raises(FileExistsError, match=str(images)):
        _demo(tmp_path)
    assert _files(tmp_path) == before
    # even with a generated annotation file next to it (another split, other arguments)
    generate_shapes_dataset(tmp_path / 'elsewhere', num_train=2, num_val=0, image_size=64)
    (tmp_path / 'annotations').mkdir(exist_ok=True)
    generated = tmp_path / 'elsewhere' / 'annotations' / 'instances_train.json'
    (tmp_path / 'annotations' / 'instances_train.json').write_bytes(generated.read_bytes())
    with pytest.raises(FileExistsError, match=str(images)):
        _demo(tmp_path, num_images=4)
    assert sorted(p.name for p in images.iterdir()) == ['cell_a.png', 'cell_b.png']


def test_only_marked_or_empty_folders_are_regenerated(tmp_path: Path) -> None:
    (tmp_path / 'train').mkdir()  # empty: fine
    assert len(_demo(tmp_path)) == 3
    assert (tmp_path / 'train' / '.instseg-demo-shapes').is_file()
    assert len(_demo(tmp_path, num_images=4)) == 4  # marked: replaced
    # a set written before the marker existed: exactly the images its json lists
    (tmp_path / 'train' / '.instseg-demo-shapes').unlink()
    assert len(_demo(tmp_path, num_images=2)) == 2
    # ... but not once the user has added a file of their own
    (tmp_path / 'train' / '.instseg-demo-shapes').unlink()
    (tmp_path / 'train' / 'mine.png').write_bytes(b'mine')
    with pytest.raises(FileExistsError, match='instseg did not generate'):
        _demo(tmp_path, num_images=3)
    assert (tmp_path / 'train' / 'mine.png').read_bytes() == b'mine'


def test_concurrent_generation_yields_one_complete_set(tmp_path: Path) -> None:
    # flock locks belong to open file descriptions, so two threads contend like two processes.
    root = tmp_path / 'shared'
    args = dict(num_train=6, num_val=2, image_size=64, seed=1)
    errors = []

    def generate() -> None:
        try:
            generate_shapes_dataset(root, **args)
        except Exception as err:  # noqa: BLE001  (reported by the assertion below)
            errors.append(err)

    threads = [threading.Thread(target=generate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    generate_shapes_dataset(tmp_path / 'single', **args)
    assert _files(root) == _files(tmp_path / 'single')
