"""Make a training checkpoint fit for release: publish_model.py IN OUT.

Keeps only the weights and the metadata (``state_dict`` and ``meta``; the optimiser state, the
message hub with its logs, the scheduler and random-number states are dropped) and appends the
first 8 hex digits of the file's sha256 to its name, as mmdetection does:
``OUT=mask_rcnn.pth`` becomes ``mask_rcnn-1a2b3c4d.pth``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import os.path as osp

import torch

from instseg.checkpoint import TRUST_ENV, load_checkpoint_file, save_atomically


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Strip a checkpoint to its weights and metadata and add its hash to the name.',
        epilog='example: python tools/model_converters/publish_model.py '
        'work_dirs/mask_rcnn_r18_fpn_demo/epoch_10.pth mask_rcnn_r18_fpn_demo.pth',
    )
    parser.add_argument('in_file', help='checkpoint written by tools/train.py')
    parser.add_argument('out_file', help='output path; the hash is inserted before ".pth"')
    parser.add_argument(
        '--save-keys',
        nargs='+',
        default=['meta', 'state_dict'],
        help='top-level checkpoint keys to keep (default: meta state_dict)',
    )
    parser.add_argument(
        '--force', action='store_true', help='overwrite OUT or the hashed file if they exist'
    )
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='load a checkpoint that contains arbitrary pickled objects',
    )
    return parser.parse_args(argv)


def sha256_of(path: str) -> str:
    """Hex sha256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def publish(
    in_file: str, out_file: str, save_keys: list[str] | None = None, force: bool = False
) -> str:
    """Write the ``save_keys`` (default ``meta``, ``state_dict``) of ``in_file`` to
    ``<out_file without .pth>-<sha256[:8]>.pth`` and return that path.

    ``out_file`` itself is never written (the file is staged under a hidden name); when it or the
    hashed file exists, FileExistsError names it unless ``force``. ``in_file`` is never replaced.
    """
    save_keys = ['meta', 'state_dict'] if save_keys is None else list(save_keys)
    if osp.exists(out_file) and not force:
        same = osp.exists(in_file) and osp.samefile(in_file, out_file)
        raise FileExistsError(
            f'{out_file} exists{" (it is IN)" if same else ""}; pass --force to publish anyway '
            '(IN is never replaced)'
        )
    checkpoint = load_checkpoint_file(in_file, map_location='cpu')
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise KeyError(f'{in_file} is not a training checkpoint: it has no "state_dict" key')
    missing = [k for k in save_keys if k not in checkpoint]
    if missing:
        raise KeyError(f'{in_file} has no {missing} (its keys: {sorted(checkpoint)})')
    dropped = sorted(set(checkpoint) - set(save_keys))
    if dropped:
        print(f'Dropping {", ".join(dropped)}')
    published = {k: checkpoint[k] for k in save_keys}
    stem = out_file[:-4] if out_file.endswith('.pth') else out_file
    directory = osp.dirname(osp.abspath(out_file))
    os.makedirs(directory, exist_ok=True)
    staged = osp.join(directory, f'.{osp.basename(stem)}.unhashed.pth')
    save_atomically(lambda tmp: torch.save(published, tmp), staged)
    final = f'{stem}-{sha256_of(staged)[:8]}.pth'
    if osp.exists(final) and not force:
        os.remove(staged)
        raise FileExistsError(f'{final} exists; pass --force to overwrite it')
    os.replace(staged, final)
    return final


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    if args.trust_checkpoint:
        os.environ[TRUST_ENV] = '1'
    final = publish(args.in_file, args.out_file, args.save_keys, args.force)
    print(f'Published {final} ({osp.getsize(final) / 2**20:.1f} MiB)')
    return final


if __name__ == '__main__':
    main()
