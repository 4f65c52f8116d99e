"""A large synthetic image predicted end to end by sliced inference, with peak memory and COCO AP.

The nuclei val tiles (1000x1000) are mosaicked into one ``--size`` x ``--size`` image (cycled;
every other copy mirrored) written as an uncompressed TIFF (memory-mapped when read), with
their annotations moved into place as one COCO file. A subprocess then loads the model, predicts
the image tile by tile (``TiledInferenceModel``) and evaluates the result with ``CocoMetric``;
it reports the peak resident set, the time and the AP.

Example (the figures in the README):
    python tools/analysis_tools/benchmarks/large_image.py CONFIG CKPT \\
        --data-root ../shared/data/nuclei/ --size 8000 --tile 1024 --json work_dirs/large.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's command-line options."""
    parser.add_argument('config', help='model config (its test pipeline runs on each tile)')
    parser.add_argument('checkpoint', help='trained weights')
    parser.add_argument('--data-root', required=True, help='nuclei dataset root (COCO layout)')
    parser.add_argument('--size', type=int, default=8000, help='mosaic height and width (px)')
    parser.add_argument('--tile', type=int, default=1024, help='tile size (px)')
    parser.add_argument('--tile-overlap', type=int, default=128, help='tile overlap (px)')
    parser.add_argument('--batch-size', type=int, default=2, help='tiles per forward pass')
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    parser.add_argument('--work-dir', default='work_dirs/large_image', help='mosaic written here')
    parser.add_argument('--json', help='also write the figures to this JSON file')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)


def make_mosaic(data_root: str, size: int, out_dir: Path) -> tuple[Path, Path, int]:
    """Write ``mosaic.tif`` and ``mosaic.json`` (COCO) -> (image path, annotation path, number
    of instances)."""
    import cv2
    import numpy as np
    import pycocotools.mask as mask_util
    import tifffile

    from instseg.structures import PredictedMasks

    root = Path(data_root)
    coco = json.loads((root / 'annotations/instances_val.json').read_text())
    images = coco['images']
    by_image: dict[int, list] = {img['id']: [] for img in images}
    for ann in coco['annotations']:
        by_image[ann['image_id']].append(ann)
    # each val image's instances once, each as (bitmap of its tight box, x0, y0)
    pieces = {}
    for img in images:
        one_by_one = [
            PredictedMasks.from_dense(mask_util.decode(a['segmentation'])[None])
            for a in by_image[img['id']]
        ]
        pieces[img['id']] = one_by_one[0].cat(one_by_one)
    out_dir.mkdir(parents=True, exist_ok=True)
    tif = out_dir / 'mosaic.tif'
    canvas = tifffile.memmap(tif, shape=(size, size, 3), dtype=np.uint8, photometric='rgb')
    annotations, patches, windows = [], [], []
    step = 1000
    k = 0
    for y in range(0, size, step):
        for x in range(0, size, step):
            img = images[k % len(images)]
            mirror = (k // len(images)) % 2 == 1
            k += 1
            pixels = cv2.imread(str(root / 'images' / img['file_name']))[..., ::-1]
            masks = pieces[img['id']]
            if mirror:
                pixels, masks = pixels[:, ::-1], masks.flip('horizontal')
            h, w = min(step, size - y), min(step, size - x)
            canvas[y : y + h, x : x + w] = pixels[:h, :w]
            for i in range(len(masks)):
                patch, px, py = masks.window(i)
                patch = patch[: max(h - py, 0), : max(w - px, 0)]
                if not patch.any():
                    continue
                patches.append(patch)
                windows.append((x + px, y + py, x + px + patch.shape[1], y + py + patch.shape[0]))
    canvas.flush()
    del canvas
    placed = PredictedMasks.from_patches(patches, np.array(windows), size, size)
    boxes = placed.get_bboxes()
    for i, (rle, area) in enumerate(zip(placed.to_rle(), placed.areas, strict=True)):
        x0, y0, x1, y1 = boxes[i].tolist()
        annotations.append(
            dict(
                id=i + 1, image_id=1, category_id=coco['categories'][0]['id'],
                segmentation=dict(size=rle['size'], counts=rle['counts'].decode()),
                area=int(area), bbox=[x0, y0, x1 - x0, y1 - y0], iscrowd=0,
            )
        )  # fmt: skip
    ann_file = out_dir / 'mosaic.json'
    ann_file.write_text(
        json.dumps(
            dict(
                images=[dict(id=1, file_name='mosaic.tif', height=size, width=size)],
                annotations=annotations,
                categories=coco['categories'],
            )
        )
    )
    return tif, ann_file, len(annotations)


def measure(args: argparse.Namespace, tif: Path, ann_file: Path) -> dict:
    """Predict and evaluate in this process (the subprocess side)."""
    import torch

    from instseg.apis import init_detector, tiled_model
    from instseg.evaluation import CocoMetric

    torch.set_num_threads(args.threads)
    model = init_detector(args.config, args.checkpoint)
    tiled = tiled_model(
        model, dict(size=args.tile, overlap=args.tile_overlap, progress=False), args.batch_size
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    start = time.perf_counter()
    sample = tiled.predict_image(tif, dict(img_id=1))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pred = sample.pred_instances
    mask_mb = pred.masks.nbytes / 2**20
    metric = CocoMetric(str(ann_file), metric=['bbox', 'segm'], proposal_nums=(100, 1000, 10**6))
    metric.dataset_meta = dict(classes=model.dataset_meta['classes'])
    metric.process({}, [sample.to_dict()])
    metrics = metric.compute_metrics(metric.results)
    return dict(
        size=sample.ori_shape,
        tiles=sample.metainfo['tiles'],
        detections=len(pred),
        peak_rss_mb=round(peak, 1),
        model_loaded_rss_mb=round(before, 1),
        mask_mb=round(mask_mb, 1),
        seconds=round(seconds, 1),
        bbox_mAP=metrics.get('bbox_mAP'),
        segm_mAP=metrics.get('segm_mAP'),
    )


def run(args: argparse.Namespace) -> dict:
    """Make the mosaic, measure it in a subprocess, print and return the figures."""
    out_dir = Path(args.work_dir)
    tif, ann_file = out_dir / 'mosaic.tif', out_dir / 'mosaic.json'
    if args.worker:
        return measure(args, tif, ann_file)
    tif, ann_file, instances = make_mosaic(args.data_root, args.size, out_dir)
    argv = [args.config, args.checkpoint, '--data-root', args.data_root, '--size',
            str(args.size), '--tile', str(args.tile), '--tile-overlap', str(args.tile_overlap),
            '--batch-size', str(args.batch_size), '--threads', str(args.threads),
            '--work-dir', str(out_dir), '--worker']  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, env=env
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f'the measurement failed:\n{proc.stderr[-3000:]}')
    result = dict(json.loads(lines[-1]), instances=instances, threads=args.threads)
    for key, value in result.items():
        print(f'{key:>20}: {value}')
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 2)[2],
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    result = run(args)
    if args.worker:
        print(json.dumps(result))
    return result


if __name__ == '__main__':
    sys.path.insert(0, str(REPO))
    main()
