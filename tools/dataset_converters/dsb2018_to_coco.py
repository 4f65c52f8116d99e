"""Data Science Bowl 2018 layout (one folder per image: images/<id>.png, masks/*.png) -> COCO."""

from __future__ import annotations

import argparse
from pathlib import Path

from instseg.datasets.converters import (
    MASK_FORMATS,
    CocoBuilder,
    check_shape,
    image_size,
    read_binary_mask,
    summary,
    write_coco_json,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert the Data Science Bowl 2018 nuclei layout to a COCO instance file: '
        'ROOT/<id>/images/<id>.png with one binary PNG per instance in ROOT/<id>/masks/. '
        "Image file names are written relative to ROOT (use data_prefix=dict(img='ROOT/')).",
        epilog='example: python tools/dataset_converters/dsb2018_to_coco.py '
        'data/dsb2018/stage1_train data/dsb2018/annotations/instances_all.json',
    )
    parser.add_argument('root', type=Path, help='folder holding one folder per image')
    parser.add_argument('out', type=Path, help='COCO json to write')
    parser.add_argument('--class-name', default='nucleus', help='the one category name')
    parser.add_argument(
        '--mask-format',
        choices=MASK_FORMATS,
        default='rle',
        help='compressed RLE (exact) or polygons (exact without holes; masks with holes stay RLE)',
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Convert and write; returns the COCO dict."""
    args = parse_args(argv)
    samples = sorted(p for p in args.root.iterdir() if (p / 'images').is_dir())
    if not samples:
        raise FileNotFoundError(f'{args.root} has no <id>/images/ folders (DSB 2018 layout)')
    builder = CocoBuilder([args.class_name], args.mask_format)
    empty = []
    for sample in samples:
        images = sorted((sample / 'images').iterdir())
        if len(images) != 1:
            raise ValueError(f'{sample / "images"} must hold exactly one image, has {len(images)}')
        size = image_size(images[0])
        image_id = builder.add_image(images[0].relative_to(args.root).as_posix(), *size)
        mask_dir = sample / 'masks'
        for mask_path in sorted(mask_dir.iterdir()) if mask_dir.is_dir() else []:
            mask = read_binary_mask(mask_path)
            check_shape(mask.shape, size, mask_path, images[0])
            if not builder.add_mask(image_id, mask):
                empty.append(mask_path)
    coco = builder.to_dict(f'converted from the DSB 2018 layout in {args.root}')
    write_coco_json(coco, args.out)
    print(summary(coco, args.out, builder.rle_fallbacks))
    if empty:
        print(f'skipped {len(empty)} empty mask files, e.g. {empty[0]}')
    return coco


if __name__ == '__main__':
    main()
