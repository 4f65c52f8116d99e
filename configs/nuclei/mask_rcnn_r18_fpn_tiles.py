# A small Mask R-CNN (ResNet-18 FPN, 64 channels, trained from scratch: nothing is downloaded)
# for H&E nuclei, trained on random 256x256 tiles of the 1000x1000 images (TiledDataset) and
# tested on whole images or tile by tile (tools/test.py --tile 512 --tile-overlap 128).
_base_ = [
    '../_base_/models/mask_rcnn_r50_fpn.py',
    '../_base_/datasets/nuclei.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime.py',
]

channels = 64
model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=None, out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels, roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(in_channels=channels, fc_out_channels=256, num_classes=1),
        mask_roi_extractor=dict(out_channels=channels, roi_layer=dict(sampling_ratio=2)),
        mask_head=dict(
            num_convs=2, in_channels=channels, conv_out_channels=channels, num_classes=1
        ),
    ),
    # Nuclei the tile border cuts below CropTile's min_visible are ignore regions.
    train_cfg=dict(
        rpn=dict(assigner=dict(ignore_iof_thr=0.5)),
        rpn_proposal=dict(nms_pre=2000, max_per_img=1000),
        rcnn=dict(assigner=dict(ignore_iof_thr=0.5)),
    ),
    test_cfg=dict(rpn=dict(nms_pre=4000, max_per_img=2000), rcnn=dict(max_per_img=1000)),
)

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    batch_sampler=None,
    dataset=dict(
        _delete_=True,
        type='TiledDataset',
        tile_size=256,
        mode='random',
        tiles_per_image=16,
        min_visible=0.5,
        dataset={{_base_.train_dataloader.dataset}},
    ),
)
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[7], gamma=0.1),
]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
