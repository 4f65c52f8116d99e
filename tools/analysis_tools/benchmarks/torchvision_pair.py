"""instseg's and torchvision's Mask R-CNN side by side: the same inputs, weights and steps.

The helpers of the vs-torchvision benchmark: a batch of synthetic images with ground truth, both
models built from one random initialisation, and one training or inference step of each.
"""

from __future__ import annotations

NUM_CLASSES = 90  # torchvision's COCO head: 90 categories + background


def make_batch(num_images: int, h: int, w: int, num_instances: int, seed: int = 0):
    """``num_images`` uint8 BGR images (3, h, w) with elliptical objects, and their ground truth.

    Returns lists of images, boxes Tensor[N, 4] xyxy, labels Tensor[N], masks uint8 [N, h, w].
    """
    import cv2
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    images, boxes, labels, masks = [], [], [], []
    for _ in range(num_images):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (0, 0), 3)
        inst_masks, inst_boxes = [], []
        for _ in range(num_instances):
            rh, rw = rng.uniform(0.08, 0.25) * h, rng.uniform(0.08, 0.25) * w
            cy, cx = rng.uniform(rh, h - rh), rng.uniform(rw, w - rw)
            mask = np.zeros((h, w), np.uint8)
            cv2.ellipse(mask, (int(cx), int(cy)), (int(rw), int(rh)), 0, 0, 360, 1, -1)
            img[mask > 0] = rng.integers(0, 256, 3, dtype=np.uint8)
            ys, xs = np.nonzero(mask)
            inst_boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            inst_masks.append(mask)
        images.append(torch.from_numpy(img).permute(2, 0, 1).contiguous())
        boxes.append(torch.tensor(inst_boxes, dtype=torch.float32))
        labels.append(torch.from_numpy(rng.integers(0, NUM_CLASSES, num_instances)))
        masks.append(torch.from_numpy(np.stack(inst_masks)))
    return images, boxes, labels, masks


def build_instseg(config: str, setting: set[str], device: str):
    """instseg's Mask R-CNN from ``config`` -> ``(model, weights)``.

    An R50 model gets torchvision's random weights (converted), so that both models find the
    same proposals and detections; any other backbone (Swin-T, ...) its own initialisation
    (``weights`` says which).
    """
    import torch
    from mmengine.config import Config

    from instseg.checkpoint.load import convert_for_model
    from instseg.registry import MODELS

    cfg = Config.fromfile(config)
    cfg.model.roi_head.bbox_head.num_classes = NUM_CLASSES
    cfg.model.roi_head.mask_head.num_classes = NUM_CLASSES
    backbone = cfg.model.backbone
    twin = backbone.type == 'ResNet' and backbone.get('depth') == 50
    backbone.init_cfg = None  # nothing is read from disk
    backbone.pop('pretrained', None)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    if twin:
        state, _ = convert_for_model(model, build_torchvision(set(), 'cpu', 512, 512).state_dict())
        missing, unexpected = model.load_state_dict(state, strict=False)
        if [k for k in missing if not k.endswith('num_batches_tracked')] or unexpected:
            raise RuntimeError(f'torchvision weights do not fit {config}: {missing} {unexpected}')
    else:
        model.init_weights()
    model.to(device)
    if 'fuse' in setting:
        from mmcv.cnn import fuse_conv_bn

        model.eval()
        fuse_conv_bn(model.backbone)
    if 'channels_last' in setting:
        model.to(memory_format=torch.channels_last)
    return model, 'torchvision init' if twin else 'own init'


def build_torchvision(setting: set[str], device: str, min_size: int, max_size: int):
    """torchvision's Mask R-CNN R50-FPN as it is built for fine-tuning: frozen BN, stem+layer1
    frozen; its transform is set so that it does not resize the benchmark images."""
    import torch
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops import FrozenBatchNorm2d

    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(
        backbone_name='resnet50', weights=None, norm_layer=FrozenBatchNorm2d, trainable_layers=3
    )
    model = MaskRCNN(backbone, num_classes=NUM_CLASSES + 1, min_size=min_size, max_size=max_size)
    model.to(device)
    if 'channels_last' in setting:
        model.to(memory_format=torch.channels_last)
    return model


def instseg_samples(images, boxes, labels, masks, device: str) -> list:
    """The batch as instseg's ``DetDataSample`` list (ground truth on ``device``)."""
    from mmengine.structures import InstanceData

    from instseg.structures import BitmapMasks, DetDataSample

    samples = []
    for img, b, lab, m in zip(images, boxes, labels, masks, strict=True):
        h, w = img.shape[-2:]
        sample = DetDataSample(
            metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0))
        )
        sample.gt_instances = InstanceData(
            bboxes=b.to(device), labels=lab.to(device), masks=BitmapMasks(m.numpy(), h, w)
        )
        samples.append(sample)
    return samples


def step_functions(framework: str, task: str, batch, setting: set[str], device: str, model):
    """A zero-argument callable that runs one timed step, and the model in the right mode.

    Training steps use SGD with lr 0: the optimiser does all its work but the weights stay at
    their random initialisation, so every timed step sees the same proposals and positives
    (random weights trained at a real lr drift apart differently in the two models).
    """
    import torch

    images, boxes, labels, masks = batch
    if framework == 'instseg':
        samples = instseg_samples(images, boxes, labels, masks, device)
        inputs = [img.to(device) for img in images]
        if task == 'train':
            model.train()
            optim = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4)

            def train_step():
                data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), True)
                loss, _ = model.parse_losses(model(**data, mode='loss'))
                loss.backward()
                optim.step()
                optim.zero_grad()

            return train_step
        model.eval()
        return lambda: model.test_step(dict(inputs=inputs, data_samples=samples))
    # torchvision wants float RGB in [0, 1] and labels counted from 1 (0 is its background)
    tv_images = [img.flip(0).float().div(255).to(device) for img in images]
    if task == 'train':
        model.train()
        targets = [
            dict(boxes=b.to(device), labels=(lab + 1).to(device), masks=m.to(device))
            for b, lab, m in zip(boxes, labels, masks, strict=True)
        ]
        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.SGD(params, lr=0.0, momentum=0.9, weight_decay=1e-4)

        def train_step():
            loss = sum(model(tv_images, targets).values())
            loss.backward()
            optim.step()
            optim.zero_grad()

        return train_step
    model.eval()
    return lambda: model(tv_images)


def count_flops(framework: str, model, batch, device: str) -> int:
    """FLOPs (2 x multiply-adds) of one inference forward, as torch's flop counter sees them.

    instseg's CPU RoIAlign is a sparse matrix product, which the counter would price as a dense
    one; torchvision's kernel stands in for it while counting (RoIAlign itself is not counted,
    for either model).
    """
    from unittest import mock

    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.ops import roi_align

    fn = step_functions(framework, 'infer', batch, set(), device, model)
    counter = FlopCounterMode(display=False)
    target = 'instseg.models.roi_heads.roi_extractors.single_level_roi_extractor.roi_align'
    with torch.inference_mode(), counter, mock.patch(target, roi_align):
        fn()
    return counter.get_total_flops()
