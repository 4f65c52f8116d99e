"""Convert a checkpoint to instseg's key names once: convert_checkpoint.py SRC DST [--format F]."""

from __future__ import annotations

import argparse
import os
import os.path as osp
from typing import Any

import torch

from instseg.checkpoint import TRUST_ENV, load_checkpoint_file, save_atomically
from instseg.checkpoint.convert import convert_checkpoint
from instseg.checkpoint.detect import BACKBONE_FORMATS, FORMATS

EXAMPLES = """examples:
  # torchvision's COCO Mask R-CNN -> an 80-class instseg checkpoint
  python tools/model_converters/convert_checkpoint.py \\
      maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth work_dirs/tv_maskrcnn.pth
  python tools/test.py configs/mask_rcnn/mask_rcnn_r50_fpn_torchvision.py \\
      work_dirs/tv_maskrcnn.pth
  # a Swin Mask R-CNN trained with the official Swin-Transformer-Object-Detection code
  python tools/model_converters/convert_checkpoint.py \\
      mask_rcnn_swin_tiny_patch4_window7.pth work_dirs/swin_t_maskrcnn.pth
  # the official Swin release, for a backbone's init_cfg=dict(type='Pretrained', ...)
  python tools/model_converters/convert_checkpoint.py \\
      swin_tiny_patch4_window7_224.pth work_dirs/swin_t_backbone.pth --format swin

load_from= converts the same files while loading; converting once saves the work and
checks the file up front.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert a detector or backbone checkpoint to instseg's key names.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('src', help='checkpoint to convert')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument(
        '--format',
        default='auto',
        choices=['auto', *FORMATS],
        help='layout of SRC (default: told from its key names)',
    )
    parser.add_argument(
        '--num-classes',
        type=int,
        default=80,
        help='torchvision COCO checkpoints (91 outputs): 80 keeps the 80 used COCO categories in '
        "instseg's label order (default), 90 keeps every output",
    )
    parser.add_argument('--force', action='store_true', help='overwrite DST if it exists')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help=f'load SRC even if it holds pickled objects besides weights (same as {TRUST_ENV}=1)',
    )
    return parser.parse_args(argv)


def convert_file(
    src: str, dst: str, fmt: str = 'auto', num_classes: int | None = 80, force: bool = False
) -> dict:
    """Convert ``src`` and write ``{'state_dict': ..., 'meta': ...}`` to ``dst`` atomically.

    An existing ``dst`` (``src`` itself included) is replaced only with ``force``, else
    FileExistsError names it. Returns the meta written: ``converted_from`` (the file),
    ``format`` and, for backbone-only formats, ``backbone_only=True``.
    """
    if osp.exists(dst) and not force:
        same = osp.exists(src) and osp.samefile(src, dst)
        raise FileExistsError(
            f'{dst} exists{" (it is SRC)" if same else ""}; pass --force to overwrite it'
        )
    checkpoint = load_checkpoint_file(src, map_location='cpu')
    state, fmt = convert_checkpoint(checkpoint, fmt, source=src, num_classes=num_classes)
    meta: dict[str, Any] = dict(converted_from=osp.basename(src), format=fmt)
    if fmt in BACKBONE_FORMATS:
        meta['backbone_only'] = True
    classes = _classes(checkpoint)
    if classes is not None:
        meta['dataset_meta'] = dict(classes=classes)
    directory = osp.dirname(osp.abspath(dst))
    os.makedirs(directory, exist_ok=True)
    output = dict(state_dict=state, meta=meta)
    save_atomically(lambda tmp: torch.save(output, tmp), dst)
    return meta


def _classes(checkpoint: Any) -> tuple[str, ...] | None:
    """Class names an mmdetection 2.x (``meta.CLASSES``) or 3.x (``meta.dataset_meta``) file has."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict):
        return None
    classes = meta.get('CLASSES') or (meta.get('dataset_meta') or {}).get('classes')
    if isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
        return tuple(classes)
    return None


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.trust_checkpoint:
        os.environ[TRUST_ENV] = '1'
    meta = convert_file(args.src, args.dst, args.format, args.num_classes, args.force)
    what = 'backbone ' if meta.get('backbone_only') else ''
    print(f'Converted {what}checkpoint {args.src} ({meta["format"]} format) -> {args.dst}')
    return meta


if __name__ == '__main__':
    main()
