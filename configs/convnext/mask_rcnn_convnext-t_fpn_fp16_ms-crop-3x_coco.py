# Mask R-CNN, ConvNeXt-T FPN, 36 epochs of multi-scale / crop training, mixed precision, AdamW
# with layer-wise lr decay (mmdetection: COCO box 46.2 / mask 41.7).
_base_ = [
    '../_base_/models/mask_rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance_ms_crop.py',
    '../_base_/schedules/schedule_3x.py',
    '../_base_/default_runtime.py',
]

# ImageNet-1k ConvNeXt-T, downloaded beforehand (nothing is fetched at run time): the ConvNeXt
# release's https://dl.fbaipublicfiles.com/convnext/convnext_tiny_1k_224.pth. mmpretrain's
# convnext-tiny_3rdparty_32xb128-noema_in1k_20220301-795e9634.pth (mmdetection's choice; add
# prefix='backbone.') and timm / Hugging Face model.safetensors files load too.
pretrained = 'checkpoints/convnext_tiny_1k_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXt',
        arch='tiny',
        out_indices=[0, 1, 2, 3],
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        gap_before_final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
    neck=dict(in_channels=None),  # the backbone's out_channels: [96, 192, 384, 768]
)

# float16 autocast on GPUs (bfloat16 on a CPU host). lr x 0.95 per layer towards the input:
# ConvNeXt-T has 6 decay layers (stage 2 in groups of 3 blocks); no decay on 1-D parameters.
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale=dict(init_scale=512),
    constructor='LearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise', num_layers=6),
    optimizer=dict(type='AdamW', lr=0.0002, betas=(0.9, 0.999), weight_decay=0.05),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
