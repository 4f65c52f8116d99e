"""Integer label images (one id per instance, 0 = background) next to their images -> COCO."""

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

IMAGE_SUFFIXES = ('.png', '.tif', '.tiff', '.jpg', '.jpeg', '.bmp')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert integer label images (pixel value k > 0 = instance k, 0 = '
        'background; 8, 16 or 32 bit) to a COCO instance file with one category. Each image in '
        'IMAGES pairs with the label image of the same stem in LABELS. Image file names are '
        "written relative to IMAGES (use data_prefix=dict(img='IMAGES/')).",
        epilog='example: python tools/dataset_converters/label_images_to_coco.py '
        'data/nuclei/images data/nuclei/label_maps data/nuclei/annotations/instances_all.json '
        '--class-name nucleus',
    )
    parser.add_argument('images', type=Path, help='folder of images')
    parser.add_argument('labels', type=Path, help='folder of label images (same stems)')
    parser.add_argument('out', type=Path, help='COCO json to write')
    parser.add_argument('--class-name', default='object', help='the one category name')
    parser.add_argument(
        '--mask-format',
        choices=MASK_FORMATS,
        default='rle',
        help='compressed RLE (exact) or polygons (exact without holes; masks with holes stay RLE)',
    )
    return parser.parse_args(argv)


def _label_path(labels_dir: Path, stem: str) -> Path:
    matches = [p for p in labels_dir.glob(f'{stem}.*') if p.suffix.lower() in IMAGE_SUFFIXES]
    if len(matches) != 1:
        found = 'none' if not matches else ', '.join(p.name for p in matches)
        raise FileNotFoundError(f'need one label image {labels_dir}/{stem}.*, found {found}')
    return matches[0]


def main(argv: list[str] | None = None) -> dict:
    """Convert and write; returns the COCO dict."""
    args = parse_args(argv)
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {args.images}')
    builder = CocoBuilder([args.class_name], args.mask_format)
    for image in images:
        size = image_size(image)
        image_id = builder.add_image(image.relative_to(args.images).as_posix(), *size)
        label_path = _label_path(args.labels, image.stem)
        labels = read_label_map(label_path)
        check_shape(labels.shape, size, label_path, image)
        builder.add_label_map(image_id, labels)
    coco = builder.to_dict(f'converted from label images in {args.labels}')
    write_coco_json(coco, args.out)
    print(summary(coco, args.out, builder.rle_fallbacks))
    return coco


if __name__ == '__main__':
    main()
