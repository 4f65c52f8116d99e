"""Train torchvision's Mask R-CNN and instseg's from one recipe on one dataset, and compare.

Both models see the same images and annotations, resized by the same rule (short side
``short_side``, long side at most ``long_side``), flipped with the same probability, trained with
the same optimiser, schedule, batch size and number of iterations, from scratch (no pretrained
weights, BatchNorm trainable and in training mode). Both are scored by the same code: their
detections become COCO result records and go through pycocotools' ``COCOeval`` (maxDets 100).
Each (model, seed) run is a fresh process.

    python tools/analysis_tools/compare_training.py --data ../shared/data/coco_tiny \\
        --ann-train annotations/instances_train2017.json --img-train train2017 \\
        --ann-val annotations/instances_val2017.json --img-val val2017 \\
        --classes person --seeds 0 1 2 --work-dir work_dirs/compare/coco_person

instseg's model is built from ``--config`` (default: the shipped Mask R-CNN base,
``configs/mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py``) with the recipe's values set as a leaf config
would set them; ``--cfg-options`` change it further (one ablation at a time). torchvision's model
is ``MaskRCNN`` on ``resnet_fpn_backbone`` with the recipe's values, trained by a plain loop.
The table gives the mean and the spread (min-max) over seeds of bbox/segm mAP and mAP50.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import os.path as osp
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'mask_rcnn', 'mask_rcnn_r50_fpn_1x_coco.py')

# The fixed recipe (issue 14); --recipe KEY=VALUE changes one value.
RECIPE: dict[str, Any] = dict(
    depth=18,
    short_side=256,
    long_side=448,
    flip=0.5,
    lr=0.005,
    momentum=0.9,
    weight_decay=1e-4,
    clip_grad=10.0,
    batch_size=2,
    iters=1000,
    warmup_iters=100,
    warmup_factor=0.001,
    steps=[800],
    gamma=0.1,
    rpn_train_pre_nms=1000,
    rpn_train_post_nms=1000,
    rcnn_samples=256,
    rpn_test_proposals=1000,
    score_thr=0.05,
    nms_iou=0.5,
    max_dets=100,
    workers=1,
)


# A child process is started as `compare_training.py --run-spec SPEC.json`: one model, one seed.
CHILD_FLAG = '--run-spec'


def spec_file(spec: dict) -> str:
    return osp.join(spec['work_dir'], 'spec.json')


# --------------------------------------------------------------------------------- data
def prepare_annotations(
    src: str, dst: str, classes: Sequence[str] | None, class_agnostic: bool
) -> list[str]:
    """Write a COCO file restricted to ``classes`` (all when None), optionally merged into one
    category ``object``; images without a kept non-crowd instance are left out. Returns the
    class names in label order."""
    with open(src) as f:
        coco = json.load(f)
    cats = sorted(coco['categories'], key=lambda c: c['id'])
    if classes:
        by_name = {c['name']: c for c in cats}
        missing = [name for name in classes if name not in by_name]
        if missing:
            raise SystemExit(f'{src}: no categories named {missing}')
        cats = [by_name[name] for name in classes]
    keep_ids = {c['id'] for c in cats}
    anns = [a for a in coco['annotations'] if a['category_id'] in keep_ids]
    if class_agnostic:
        for ann in anns:
            ann['category_id'] = 1
        cats = [dict(id=1, name='object', supercategory='object')]
    with_objects = {a['image_id'] for a in anns if not a.get('iscrowd', 0)}
    images = [img for img in coco['images'] if img['id'] in with_objects]
    out = dict(images=images, annotations=anns, categories=cats)
    out['info'] = coco.get('info', {})
    out['licenses'] = coco.get('licenses', [])
    os.makedirs(osp.dirname(dst), exist_ok=True)
    with open(dst, 'w') as f:
        json.dump(out, f)
    return [c['name'] for c in cats]


def evaluate(ann_file: str, predictions: list[dict]) -> dict[str, float]:
    """COCO bbox and segm mAP / mAP50 (pycocotools, maxDets 100) of instseg-style compact
    predictions (``img_id``, ``bboxes`` xyxy, ``scores``, ``labels``, ``masks`` as RLE)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from instseg.evaluation.coco_results import to_coco_results

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
    cat_ids = sorted(gt.getCatIds())
    bbox_results, segm_results = to_coco_results(predictions, cat_ids)
    stats = {}
    for iou_type, results in (('bbox', bbox_results), ('segm', segm_results)):
        if not results:
            stats[f'{iou_type}_mAP'] = stats[f'{iou_type}_mAP50'] = 0.0
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(results)
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats[f'{iou_type}_mAP'] = float(ev.stats[0])
        stats[f'{iou_type}_mAP50'] = float(ev.stats[1])
    return stats


def lr_factor(iteration: int, recipe: dict) -> float:
    """The recipe's lr multiplier at ``iteration`` (0-based): linear warmup, then steps."""
    factor = recipe['gamma'] ** sum(iteration >= s for s in recipe['steps'])
    if iteration < recipe['warmup_iters']:
        alpha = iteration / recipe['warmup_iters']
        factor *= recipe['warmup_factor'] * (1 - alpha) + alpha
    return factor


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------- torchvision
class TorchvisionCoco:
    """A COCO file as torchvision detection samples: RGB float [0, 1] image and a target dict
    (``boxes`` xyxy, ``labels`` 1..C, ``masks`` uint8 [N, H, W]); crowds are left out, as in
    torchvision's reference scripts. ``flip`` is the horizontal flip probability."""

    def __init__(self, ann_file: str, img_dir: str, flip: float) -> None:
        import contextlib
        import io

        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = COCO(ann_file)
        self.img_dir = img_dir
        self.flip = flip
        self.ids = sorted(self.coco.getImgIds())
        self.label_of = {cat: i + 1 for i, cat in enumerate(sorted(self.coco.getCatIds()))}

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, img_id: int):
        import cv2
        import torch

        info = self.coco.loadImgs(img_id)[0]
        path = osp.join(self.img_dir, info['file_name'])
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(path)
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0, info

    def __getitem__(self, index: int):
        import torch

        img_id = self.ids[index]
        image, info = self.image(img_id)
        anns = [
            a
            for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=img_id))
            if not a.get('iscrowd', 0) and a['bbox'][2] > 0 and a['bbox'][3] > 0
        ]
        boxes = torch.tensor([a['bbox'] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        labels = torch.tensor([self.label_of[a['category_id']] for a in anns], dtype=torch.int64)
        masks = np.stack([self.coco.annToMask(a) for a in anns]) if anns else None
        masks = (
            torch.from_numpy(masks)
            if masks is not None
            else torch.zeros((0, info['height'], info['width']), dtype=torch.uint8)
        )
        if random.random() < self.flip:
            width = image.shape[-1]
            image = image.flip(-1)
            masks = masks.flip(-1)
            boxes = torch.stack(
                [width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1
            )
        return image, dict(boxes=boxes, labels=labels, masks=masks)


def _collate(batch):
    return tuple(zip(*batch, strict=True))


def torchvision_model(spec: dict):
    """torchvision's ``MaskRCNN`` on ``resnet_fpn_backbone`` with the recipe's values, freshly
    initialised from the current torch random state."""
    from torch import nn
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    recipe = spec['recipe']
    backbone = resnet_fpn_backbone(
        backbone_name=f'resnet{recipe["depth"]}',
        weights=None,
        norm_layer=nn.BatchNorm2d,
        trainable_layers=5,
    )
    return MaskRCNN(
        backbone,
        num_classes=len(spec['classes']) + 1,
        min_size=recipe['short_side'],
        max_size=recipe['long_side'],
        rpn_pre_nms_top_n_train=recipe['rpn_train_pre_nms'],
        rpn_post_nms_top_n_train=recipe['rpn_train_post_nms'],
        rpn_pre_nms_top_n_test=recipe['rpn_test_proposals'],
        rpn_post_nms_top_n_test=recipe['rpn_test_proposals'],
        box_batch_size_per_image=recipe['rcnn_samples'],
        box_score_thresh=recipe['score_thr'],
        box_nms_thresh=recipe['nms_iou'],
        box_detections_per_img=recipe['max_dets'],
    )


def train_torchvision(spec: dict) -> list[dict]:
    """Train torchvision's Mask R-CNN by the recipe; returns compact val predictions."""
    import torch
    from torch import nn

    from instseg.evaluation.coco_results import compact_prediction

    recipe, seed = spec['recipe'], spec['seed']
    seed_everything(seed)
    model = torchvision_model(spec)
    train_set = TorchvisionCoco(spec['ann_train'], spec['img_train'], recipe['flip'])
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        train_set,
        batch_size=recipe['batch_size'],
        shuffle=True,
        drop_last=True,
        num_workers=recipe['workers'],
        collate_fn=_collate,
        generator=generator,
        worker_init_fn=lambda worker: random.seed(seed * 1000 + worker),
        persistent_workers=recipe['workers'] > 0,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=recipe['lr'], momentum=recipe['momentum'], weight_decay=recipe['weight_decay']
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, recipe))
    model.train()
    iteration, start = 0, time.perf_counter()
    while iteration < recipe['iters']:
        for images, targets in loader:
            losses = model(list(images), list(targets))
            loss = sum(losses.values())
            if not math.isfinite(float(loss)):
                raise FloatingPointError(f'torchvision: non-finite loss at iteration {iteration}')
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, recipe['clip_grad'])
            optimizer.step()
            scheduler.step()
            iteration += 1
            if iteration % 50 == 0:
                parts = {k: float(v) for k, v in losses.items()}
                _progress('torchvision', seed, iteration, recipe['iters'], parts, start)
            if iteration >= recipe['iters']:
                break

    model.eval()
    val_set = TorchvisionCoco(spec['ann_val'], spec['img_val'], flip=0.0)
    predictions = []
    with torch.no_grad():
        for img_id in val_set.ids:
            image, info = val_set.image(img_id)
            out = model([image])[0]
            sample = dict(
                img_id=img_id,
                ori_shape=(info['height'], info['width']),
                pred_instances=dict(
                    bboxes=out['boxes'],
                    scores=out['scores'],
                    labels=out['labels'] - 1,
                    masks=out['masks'][:, 0] >= 0.5,
                ),
            )
            predictions.append(compact_prediction(sample))
    return predictions


def _progress(name: str, seed: int, it: int, total: int, losses: dict, start: float) -> None:
    rate = (time.perf_counter() - start) / it
    parts = ' '.join(f'{k} {v:.4f}' for k, v in losses.items())
    print(
        f'[{name} seed {seed}] iter {it}/{total} loss {sum(losses.values()):.4f} {parts} '
        f'{rate:.2f} s/it',
        file=sys.stderr,
        flush=True,
    )


# ---------------------------------------------------------------------------------- instseg
def instseg_config(spec: dict):
    """The instseg config of the recipe: ``spec['config']`` plus the recipe's values."""
    from instseg.engine.config import load_config

    recipe = spec['recipe']
    cfg = load_config(spec['config'], None, spec['work_dir'])
    num_classes = len(spec['classes'])
    resize = dict(type='Resize', scale=(recipe['long_side'], recipe['short_side']), keep_ratio=True)
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        resize,
        dict(type='RandomFlip', prob=recipe['flip']),
        dict(type='PackDetInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        resize,
        dict(
            type='PackDetInputs',
            meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
        ),
    ]
    metainfo = dict(classes=tuple(spec['classes']))
    leaf = dict(
        model=dict(
            backbone=dict(depth=recipe['depth'], frozen_stages=-1, norm_eval=False, init_cfg=None),
            neck=dict(in_channels=None),
            roi_head=dict(
                bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)
            ),
            train_cfg=dict(
                rpn_proposal=dict(
                    nms_pre=recipe['rpn_train_pre_nms'], max_per_img=recipe['rpn_train_post_nms']
                ),
                rcnn=dict(sampler=dict(num=recipe['rcnn_samples'])),
            ),
            test_cfg=dict(
                rpn=dict(
                    nms_pre=recipe['rpn_test_proposals'], max_per_img=recipe['rpn_test_proposals']
                ),
                rcnn=dict(
                    score_thr=recipe['score_thr'],
                    nms=dict(iou_threshold=recipe['nms_iou']),
                    max_per_img=recipe['max_dets'],
                ),
            ),
        ),
        train_dataloader=dict(
            batch_size=recipe['batch_size'],
            num_workers=recipe['workers'],
            persistent_workers=recipe['workers'] > 0,
            dataset=dict(
                data_root='',
                ann_file=spec['ann_train'],
                data_prefix=dict(img=spec['img_train'] + '/'),
                metainfo=metainfo,
                pipeline=train_pipeline,
            ),
        ),
        val_dataloader=dict(
            batch_size=1,
            num_workers=recipe['workers'],
            persistent_workers=False,
            dataset=dict(
                data_root='',
                ann_file=spec['ann_val'],
                data_prefix=dict(img=spec['img_val'] + '/'),
                metainfo=metainfo,
                pipeline=test_pipeline,
            ),
        ),
        val_evaluator=dict(ann_file=spec['ann_val']),
        train_cfg=dict(_delete_=True, type='IterBasedTrainLoop', max_iters=recipe['iters']),
        optim_wrapper=dict(
            _delete_=True,
            type='OptimWrapper',
            optimizer=dict(
                type='SGD',
                lr=recipe['lr'],
                momentum=recipe['momentum'],
                weight_decay=recipe['weight_decay'],
            ),
            clip_grad=dict(max_norm=recipe['clip_grad']),
        ),
        param_scheduler=[
            dict(
                type='LinearLR',
                start_factor=recipe['warmup_factor'],
                by_epoch=False,
                begin=0,
                end=recipe['warmup_iters'],
            ),
            dict(
                type='MultiStepLR',
                by_epoch=False,
                begin=0,
                end=recipe['iters'],
                milestones=list(recipe['steps']),
                gamma=recipe['gamma'],
            ),
        ],
        default_hooks=dict(
            logger=dict(interval=50),
            checkpoint=dict(by_epoch=False, interval=recipe['iters'], save_best=None),
            curves=None,
        ),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=spec['seed']),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
    )
    cfg.merge_from_dict(leaf)
    if spec.get('cfg_options'):
        cfg.merge_from_dict(spec['cfg_options'])
    # Evaluation is done outside the runner, by the same code as torchvision's.
    spec['val_dataloader'] = cfg.val_dataloader
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    return cfg


def train_instseg(spec: dict) -> list[dict]:
    """Train instseg's Mask R-CNN by the recipe with its Runner; returns compact predictions."""
    import torch

    from instseg.engine import Runner
    from instseg.evaluation.coco_results import compact_prediction

    cfg = instseg_config(spec)
    if spec.get('init') == 'torchvision':
        # torchvision's initial weights (same seed), converted while loading: isolates the
        # training path from the initialisation.
        seed_everything(spec['seed'])
        path = osp.join(spec['work_dir'], 'torchvision_init.pth')
        torch.save(dict(state_dict=torchvision_model(spec).state_dict()), path)
        cfg.load_from = path
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    model.eval()
    predictions = []
    with torch.no_grad():
        for batch in runner.build_dataloader(spec['val_dataloader']):
            for sample in model.test_step(batch):
                record = dict(
                    img_id=sample.img_id,
                    ori_shape=sample.ori_shape,
                    pred_instances=sample.pred_instances.to_dict(),
                )
                predictions.append(compact_prediction(record))
    return predictions


# ----------------------------------------------------------------------------------- driver
def run_one(spec_path: str) -> None:
    """Child process: train one model with one seed and write its scores next to the spec."""
    import torch

    with open(spec_path) as f:
        spec = json.load(f)
    torch.set_num_threads(spec['threads'])
    start = time.perf_counter()
    train = train_torchvision if spec['model'] == 'torchvision' else train_instseg
    predictions = train(spec)
    stats = evaluate(spec['ann_val'], predictions)
    stats['train_and_eval_s'] = time.perf_counter() - start
    with open(spec['result'], 'w') as f:
        json.dump(stats, f)


def summarise(rows: dict[str, list[dict]]) -> str:
    keys = ['bbox_mAP', 'bbox_mAP50', 'segm_mAP', 'segm_mAP50']
    lines = [
        '| model | seeds | ' + ' | '.join(keys) + ' | min / run |',
        '|---' * (len(keys) + 3) + '|',
    ]
    for name, results in rows.items():
        cells = []
        for key in keys:
            values = np.array([r[key] for r in results])
            cells.append(f'{values.mean():.3f} ({values.min():.3f}-{values.max():.3f})')
        minutes = np.mean([r['train_and_eval_s'] for r in results]) / 60
        lines.append(f'| {name} | {len(results)} | ' + ' | '.join(cells) + f' | {minutes:.1f} |')
    return '\n'.join(lines)


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', required=True, help='dataset root')
    parser.add_argument('--ann-train', required=True, help='train COCO file, relative to --data')
    parser.add_argument('--ann-val', required=True, help='val COCO file, relative to --data')
    parser.add_argument('--img-train', default='', help='train image folder, relative to --data')
    parser.add_argument('--img-val', default='', help='val image folder, relative to --data')
    parser.add_argument('--classes', nargs='+', help='train on these categories only')
    parser.add_argument(
        '--class-agnostic', action='store_true', help='merge all categories into one'
    )
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--models', nargs='+', default=['torchvision', 'instseg'])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='instseg config to start from')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='changes to the instseg config (values parsed as JSON where they can be)',
    )
    parser.add_argument(
        '--recipe', nargs='+', default=[], metavar='KEY=VALUE', help='change recipe values'
    )
    parser.add_argument('--name', help='name of the instseg row (default: instseg)')
    parser.add_argument(
        '--init',
        choices=['own', 'torchvision'],
        default='own',
        help="instseg's initial weights: its own initialisation, or torchvision's (same seed)",
    )
    parser.add_argument('--work-dir', default='work_dirs/compare_training')
    parser.add_argument('--jobs', type=int, default=1, help='runs at the same time')
    parser.add_argument(
        '--threads', type=int, default=0, help='threads per run (default: cores / jobs)'
    )
    return parser.parse_args(argv)


def key_values(items: list[str], what: str) -> dict[str, Any]:
    out = {}
    for item in items:
        if '=' not in item:
            raise SystemExit(f'{what}: expected KEY=VALUE, got {item!r}')
        key, value = item.split('=', 1)
        out[key] = parse_value(value)
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == CHILD_FLAG:
        run_one(argv[1])
        return
    args = parse_args(argv)
    recipe = dict(RECIPE)
    for key, value in key_values(args.recipe, '--recipe').items():
        if key not in recipe:
            raise SystemExit(f'--recipe: unknown key {key!r}; known: {", ".join(recipe)}')
        recipe[key] = value
    unknown = set(args.models) - {'torchvision', 'instseg'}
    if unknown:
        raise SystemExit(f'--models: unknown {sorted(unknown)}; use torchvision and/or instseg')
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    ann_train = osp.join(work_dir, 'annotations', 'train.json')
    ann_val = osp.join(work_dir, 'annotations', 'val.json')
    classes = prepare_annotations(
        osp.join(args.data, args.ann_train), ann_train, args.classes, args.class_agnostic
    )
    prepare_annotations(
        osp.join(args.data, args.ann_val), ann_val, args.classes, args.class_agnostic
    )
    cfg_options = key_values(args.cfg_options, '--cfg-options')
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    name = args.name or 'instseg'

    jobs = []
    for model in args.models:
        for seed in args.seeds:
            row = name if model == 'instseg' else 'torchvision'
            run_dir = osp.join(work_dir, f'{row}_seed{seed}')
            os.makedirs(run_dir, exist_ok=True)
            spec = dict(
                model=model,
                seed=seed,
                recipe=recipe,
                classes=classes,
                ann_train=ann_train,
                ann_val=ann_val,
                img_train=osp.abspath(osp.join(args.data, args.img_train)),
                img_val=osp.abspath(osp.join(args.data, args.img_val)),
                config=osp.abspath(args.config),
                cfg_options=cfg_options if model == 'instseg' else {},
                init=args.init,
                work_dir=run_dir,
                threads=threads,
                result=osp.join(run_dir, 'result.json'),
            )
            with open(spec_file(spec), 'w') as f:
                json.dump(spec, f, indent=1)
            jobs.append((row, spec))

    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    pending, running, rows = list(jobs), [], {}
    while pending or running:
        while pending and len(running) < args.jobs:
            row, spec = pending.pop(0)
            log = open(osp.join(spec['work_dir'], 'run.log'), 'w')
            cmd = [sys.executable, osp.abspath(__file__), CHILD_FLAG, spec_file(spec)]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            running.append((row, spec, proc, log))
            print(f'started {row} seed {spec["seed"]} (log: {log.name})', flush=True)
        time.sleep(2)
        for item in list(running):
            row, spec, proc, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            if proc.returncode != 0:
                raise SystemExit(f'{row} seed {spec["seed"]} failed; see {log.name}')
            with open(spec['result']) as f:
                result = json.load(f)
            rows.setdefault(row, []).append(result)
            scores = ', '.join(f'{k} {v:.3f}' for k, v in result.items() if 'mAP' in k)
            print(f'done {row} seed {spec["seed"]}: {scores}', flush=True)
    table = summarise({row: rows[row] for row in dict.fromkeys(r for r, _ in jobs)})
    print(table)
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(dict(recipe=recipe, cfg_options=cfg_options, rows=rows), f, indent=1)


if __name__ == '__main__':
    main()
