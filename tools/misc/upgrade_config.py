"""Translate an mmdetection 2.x config into a native instseg config file.

python tools/misc/upgrade_config.py OLD.py NEW.py

NEW.py holds the merged, translated config (no ``_base_``), with the translation notes on top;
it loads back to exactly what ``tools/train.py OLD.py`` would run.
"""

from __future__ import annotations

import argparse
import os.path as osp
import textwrap
import warnings

from mmengine.config import Config

from instseg.compat.mmdet2 import find_2x_markers, format_config, translate_2x

EXAMPLES = """example:
  python tools/misc/upgrade_config.py \\
      my_configs/mask_rcnn_swin_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco.py \\
      configs/mine/mask_rcnn_swin-t_3x.py
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write an mmdetection 2.x config as a native instseg config.',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('old', help='the 2.x config (its _base_ files are read as usual)')
    parser.add_argument('new', help='where to write the native config (.py)')
    parser.add_argument('--force', action='store_true', help='overwrite NEW if it exists')
    return parser.parse_args(argv)


def upgrade(old: str, new: str, force: bool = False) -> Config:
    """Translate ``old`` and write it to ``new``; return the translated config."""
    if not osp.isfile(old):
        raise FileNotFoundError(f'Config file {old} does not exist')
    if not new.endswith('.py'):
        raise ValueError(f'{new}: the native config must be a .py file')
    if osp.abspath(old) == osp.abspath(new) or (osp.exists(new) and not force):
        raise FileExistsError(f'{new} exists; pass --force to overwrite it')
    cfg = Config.fromfile(old)
    markers = find_2x_markers(cfg.to_dict())
    if not markers:
        raise ValueError(
            f'{old} is already a native config (no mmdetection 2.x keys); nothing to do'
        )
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the notes below list every warning
        translated, notes = translate_2x(cfg, source=old)
    lines = ['Translated from an mmdetection 2.x config by tools/misc/upgrade_config.py:', old]
    lines.append('Notes:')
    for note in notes:
        lines += textwrap.wrap(
            f'- {note}', width=96, subsequent_indent='  ', break_on_hyphens=False
        )
    header = '\n'.join(lines)
    text = format_config(translated.to_dict(), header)
    directory = osp.dirname(osp.abspath(new))
    if not osp.isdir(directory):
        raise FileNotFoundError(f'{directory} does not exist')
    with open(new, 'w') as f:
        f.write(text)
    if Config.fromfile(new).to_dict() != translated.to_dict():  # the printer's guarantee
        raise RuntimeError(f'{new} does not load back to the translation; please report this')
    for note in notes:
        print(f'  {note}')
    print(f'wrote {new}')
    return translated


def main(argv: list[str] | None = None) -> Config:
    args = parse_args(argv)
    return upgrade(args.old, args.new, args.force)


if __name__ == '__main__':
    main()
