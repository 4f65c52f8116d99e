"""Run a detector on an image or a folder of images, writing overlays and JSON results."""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
from pathlib import Path

import numpy as np
from mmengine.config import DictAction

from instseg.apis import inference_detector, init_detector
from instseg.evaluation.coco_results import encode_mask_results
from instseg.visualization import DetLocalVisualizer
from instseg.visualization.draw import read_rgb

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')

EXAMPLES = """examples:
  python tools/image_demo.py data/demo_shapes/val configs/demo/mask_rcnn_r18_fpn_demo.py \\
      work_dirs/mask_rcnn_r18_fpn_demo/epoch_10.pth --out-dir outputs --score-thr 0.5
  python tools/image_demo.py photo.jpg CONFIG CHECKPOINT --out-dir outputs --device cuda:0
  python tools/image_demo.py slide.tif CONFIG CHECKPOINT --out-dir outputs --tile 1024 \\
      --tile-overlap 128 --batch-size 4

writes OUT_DIR/vis/<image>.png (overlay) and OUT_DIR/preds/<image>.json with the detections
above --score-thr: bboxes [x1, y1, x2, y2], scores, labels, class names and COCO RLE masks.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``argv`` for calling from Python)."""
    parser = argparse.ArgumentParser(
        description='Detect and segment instances in images with a trained model.',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-dir', required=True, help='where vis/ and preds/ are written')
    parser.add_argument('--score-thr', type=float, default=0.3, help='keep detections above it')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument('--no-vis', action='store_true', help='write only the JSON results')
    parser.add_argument(
        '--tile',
        type=int,
        help='sliced inference for large images: tiles of this size (px), read window by window '
        '(.npy and uncompressed TIFF memory-mapped), --batch-size tiles per pass, a progress bar',
    )
    parser.add_argument(
        '--tile-overlap', type=int, default=128, help='with --tile: pixels neighbouring tiles share'
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    return parser.parse_args(argv)


def list_images(inputs: str) -> list[str]:
    """``inputs`` itself, or the images in the folder ``inputs`` (sorted, not recursive)."""
    if osp.isdir(inputs):
        files = sorted(
            str(p) for p in Path(inputs).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise FileNotFoundError(f'No images ({", ".join(IMAGE_EXTENSIONS)}) in {inputs}')
        return files
    if not osp.isfile(inputs):
        raise FileNotFoundError(f'Input {inputs} is neither an image file nor a folder')
    return [inputs]


def prediction_record(sample, img_path: str, classes, score_thr: float) -> dict:
    """One image's detections above ``score_thr`` as a JSON-ready dict."""
    pred = sample.pred_instances
    pred = pred[pred.scores > score_thr]
    labels = pred.labels.cpu().numpy().astype(int).tolist()
    record = dict(
        img_path=img_path,
        height=int(sample.ori_shape[0]),
        width=int(sample.ori_shape[1]),
        bboxes=np.round(pred.bboxes.cpu().numpy(), 2).tolist(),
        scores=np.round(pred.scores.cpu().numpy(), 4).tolist(),
        labels=labels,
        class_names=[classes[i] if i < len(classes) else str(i) for i in labels],
    )
    if 'masks' in pred:
        record['masks'] = [
            dict(size=[int(s) for s in rle['size']], counts=rle['counts'].decode())
            for rle in encode_mask_results(pred.masks)
        ]
    return record


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the detector on every input image; returns the JSON records it wrote."""
    args = parse_args(argv)
    images = list_images(args.inputs)
    model = init_detector(args.config, args.checkpoint, args.device, args.cfg_options)
    classes = list(model.dataset_meta.get('classes', ()))
    visualizer = None
    if not args.no_vis:
        visualizer = DetLocalVisualizer(name='image_demo')
        visualizer.dataset_meta = model.dataset_meta
    vis_dir, pred_dir = osp.join(args.out_dir, 'vis'), osp.join(args.out_dir, 'preds')
    os.makedirs(pred_dir, exist_ok=True)
    records = []
    for start in range(0, len(images), args.batch_size):
        batch = images[start : start + args.batch_size]
        tile = dict(size=args.tile, overlap=args.tile_overlap) if args.tile else None
        samples = inference_detector(model, batch, batch_size=args.batch_size, tile=tile)
        for img_path, sample in zip(batch, samples, strict=True):
            stem = Path(img_path).stem
            record = prediction_record(sample, img_path, classes, args.score_thr)
            with open(osp.join(pred_dir, stem + '.json'), 'w') as f:
                json.dump(record, f)
            records.append(record)
            if visualizer is not None:
                visualizer.add_datasample(
                    stem,
                    read_rgb(img_path),
                    sample,
                    pred_score_thr=args.score_thr,
                    out_file=osp.join(vis_dir, stem + '.png'),
                )
            print(f'{img_path}: {len(record["scores"])} instances above {args.score_thr}')
    print(f'results written to {args.out_dir}')
    return records


if __name__ == '__main__':
    main()
