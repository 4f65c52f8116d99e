# YOLACT, ResNet-50 FPN, for H&E nuclei (one class, up to ~1,900 small instances per 1000x1000
# tile): tiles at their own size (no 550 px resize, which would halve the ~19 px nuclei), anchors
# from 16 px, up to 1,000 detections per image, AdamW, mixed precision.
_base_ = [
    '../_base_/models/yolact_r50.py',
    '../_base_/datasets/nuclei.py',
    '../_base_/default_runtime.py',
]

num_classes = 1
model = dict(
    data_preprocessor=dict(pad_size_divisor=32),  # any tile size; the anchor grid has int strides
    # torchvision's ImageNet ResNet-50, downloaded beforehand (nothing is fetched at run time):
    # https://download.pytorch.org/models/resnet50-0676ba61.pth
    backbone=dict(
        init_cfg=dict(
            _delete_=True, type='Pretrained', checkpoint='checkpoints/resnet50-0676ba61.pth'
        ),
    ),
    bbox_head=dict(
        num_classes=num_classes,
        anchor_generator=dict(
            _delete_=True,
            type='AnchorGenerator',
            octave_base_scale=2,
            scales_per_octave=1,
            ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128],
            center_offset=0.5,
        ),
    ),
    # Crowded tiles: more masks per image in the loss, more candidates and detections kept.
    mask_head=dict(num_classes=num_classes, max_masks_to_train=300),
    test_cfg=dict(nms_pre=4000, top_k=2000, max_per_img=1000),
)

optim_wrapper = dict(
    type='AmpOptimWrapper',  # float16 autocast on GPUs (bfloat16 on a CPU host)
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0),
)
max_epochs = 36
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# 20 training tiles at batch 2 are 10 iterations per epoch: warm up over the first 10 epochs.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33]),
]
auto_scale_lr = dict(base_batch_size=2)
