"""Print the fully merged config (all _base_ files and --cfg-options applied)."""

from __future__ import annotations

import argparse
import os

from mmengine.config import DictAction

from instseg.engine.config import load_config

EXAMPLES = """examples:
  python tools/misc/print_config.py configs/demo/mask_rcnn_r18_fpn_demo.py
  python tools/misc/print_config.py configs/mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py \\
      --cfg-options model.backbone.depth=101 --save-path merged.py
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``argv`` for calling from Python)."""
    parser = argparse.ArgumentParser(
        description='Print the merged config.',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('config', help='config file path')
    parser.add_argument('--save-path', help='also write the merged config here (.py, .json, .yaml)')
    parser.add_argument('--force', action='store_true', help='overwrite --save-path if it exists')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    """Print (and save) the merged config; returns its text."""
    args = parse_args(argv)
    if args.save_path and os.path.exists(args.save_path) and not args.force:
        raise FileExistsError(f'--save-path {args.save_path} exists; pass --force to overwrite it')
    # load_config also translates mmdetection 2.x configs, so this prints what a run would use
    cfg = load_config(args.config, args.cfg_options)
    text = cfg.pretty_text
    print(f'Config:\n{text}')
    if args.save_path:
        cfg.dump(args.save_path)
        print(f'saved the merged config to {args.save_path}')
    return text


if __name__ == '__main__':
    main()
