"""Per-class instance-id maps (per image folder: image.tif, class1.tif ... classK.tif) -> COCO."""

from __future__ import annotations

import argparse
from pathlib import Path

from instseg.datasets.converters import (
    MASK_FORMATS,
    CocoBuilder,
    check_shape,
    image_size,
    read_label_map,
    summary,
    write_coco_json,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert folders holding an image and one instance-id map per class '
        '(ROOT/<sample>/image.tif and class1.tif ... classK.tif: pixel value k > 0 is instance '
        'k of that class, 0 is background) to a COCO instance file. Image file names are '
        "written relative to ROOT (use data_prefix=dict(img='ROOT/')).",
        epilog='example: python tools/dataset_converters/instance_maps_to_coco.py data/cells '
        'data/cells/annotations/instances_all.json '
        '--classes tumour,lymphocyte,stroma,epithelial',
    )
    parser.add_argument('root', type=Path, help='folder holding one folder per image')
    parser.add_argument('out', type=Path, help='COCO json to write')
    parser.add_argument(
        '--classes',
        required=True,
        help='comma-separated category names; the k-th (from 1) reads --map-pattern with k',
    )
    parser.add_argument('--image-name', default='image.tif', help='image file in each folder')
    parser.add_argument(
        '--map-pattern', default='class{}.tif', help='map file of class k: pattern.format(k)'
    )
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
    classes = [name.strip() for name in args.classes.split(',') if name.strip()]
    samples = sorted(p for p in args.root.iterdir() if (p / args.image_name).is_file())
    if not samples:
        raise FileNotFoundError(f'no folder in {args.root} holds an {args.image_name}')
    builder = CocoBuilder(classes, args.mask_format)
    for sample in samples:
        image = sample / args.image_name
        size = image_size(image)
        image_id = builder.add_image(image.relative_to(args.root).as_posix(), *size)
        for k in range(1, len(classes) + 1):
            map_path = sample / args.map_pattern.format(k)
            if not map_path.is_file():
                raise FileNotFoundError(
                    f'{map_path} is missing ({len(classes)} classes given, so each folder needs '
                    f'{args.map_pattern.format(1)} ... {args.map_pattern.format(len(classes))})'
                )
            labels = read_label_map(map_path)
            check_shape(labels.shape, size, map_path, image)
            builder.add_label_map(image_id, labels, category_id=k)
    coco = builder.to_dict(f'converted from per-class instance maps in {args.root}')
    write_coco_json(coco, args.out)
    print(summary(coco, args.out, builder.rle_fallbacks))
    return coco


if __name__ == '__main__':
    main()
