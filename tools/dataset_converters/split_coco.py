"""Split a COCO file into train and val by image, with a seed and a ratio."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from instseg.datasets.converters import summary, write_coco_json


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Split a COCO instance file into train and val: a seeded random share of '
        'the images with all their annotations; image, annotation and category ids are kept, '
        'and categories, info and licenses are copied to both files.',
        epilog='example: python tools/dataset_converters/split_coco.py '
        'data/cells/annotations/instances_all.json --ratio 0.8 --seed 0  '
        '(writes instances_train.json and instances_val.json next to it)',
    )
    parser.add_argument('ann_file', type=Path, help='COCO json to split')
    parser.add_argument('--ratio', type=float, default=0.8, help='share of images for train')
    parser.add_argument('--seed', type=int, default=0, help='random seed of the split')
    parser.add_argument(
        '--out-dir', type=Path, help="folder for the two files (default: ann_file's folder)"
    )
    parser.add_argument(
        '--force', action='store_true', help='overwrite the two output files if they exist'
    )
    parser.add_argument(
        '--names',
        nargs=2,
        default=('train', 'val'),
        metavar=('TRAIN', 'VAL'),
        help='split names: files are instances_<name>.json',
    )
    return parser.parse_args(argv)


def split_coco(coco: dict, ratio: float, seed: int) -> tuple[dict, dict]:
    """Two COCO dicts: ``round(ratio * N)`` of the N images (at least one per split when N > 1)
    chosen by ``seed``, each with its annotations; both keep the file's image order."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f'--ratio must be between 0 and 1 (exclusive), got {ratio}')
    images = coco['images']
    num = len(images)
    num_train = min(max(round(ratio * num), 1), num - 1) if num > 1 else num
    chosen = set(np.random.default_rng(seed).permutation(num)[:num_train].tolist())
    parts = []
    for in_train in (True, False):
        part_images = [img for i, img in enumerate(images) if (i in chosen) == in_train]
        ids = {img['id'] for img in part_images}
        part = {k: v for k, v in coco.items() if k not in ('images', 'annotations')}
        part['images'] = part_images
        part['annotations'] = [a for a in coco.get('annotations', []) if a['image_id'] in ids]
        parts.append(part)
    return parts[0], parts[1]


def main(argv: list[str] | None = None) -> tuple[dict, dict]:
    """Split and write; returns the (train, val) COCO dicts."""
    args = parse_args(argv)
    coco = json.loads(args.ann_file.read_text())
    train, val = split_coco(coco, args.ratio, args.seed)
    known = {img['id'] for img in coco['images']}
    orphans = sum(a['image_id'] not in known for a in coco.get('annotations', []))
    out_dir = args.ann_file.parent if args.out_dir is None else args.out_dir
    paths = [out_dir / f'instances_{name}.json' for name in args.names]
    for path in paths:  # all checked before either is written
        if path.resolve() == args.ann_file.resolve():
            raise ValueError(f'{path} would overwrite the input; choose other --names or --out-dir')
        if path.exists() and not args.force:
            raise FileExistsError(f'{path} exists; pass --force to overwrite it')
    for part, path in zip((train, val), paths, strict=True):
        write_coco_json(part, path)
        print(summary(part, path))
    if orphans:
        print(f'left out {orphans} annotations whose image_id is not in {args.ann_file}')
    return train, val


if __name__ == '__main__':
    main()
