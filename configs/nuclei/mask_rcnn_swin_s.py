# Mask R-CNN, Swin-S FPN, for H&E nuclei: the ResNet-50 nuclei recipe with the Swin backbone
# and mmdetection's Swin optimiser settings (no weight decay on norms and position tables).
_base_ = './mask_rcnn_r50_fpn.py'

# ImageNet-1k Swin-S from the Swin Transformer release, downloaded beforehand (nothing is fetched
# at run time): https://github.com/SwinTransformer/storage/releases/download/v1.0.0/
# swin_small_patch4_window7_224.pth
pretrained = 'checkpoints/swin_small_patch4_window7_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        embed_dims=96,
        depths=[2, 2, 18, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.2,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,  # True: recompute blocks in backward, less activation memory
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
    neck=dict(in_channels=None),  # the backbone's out_channels: [96, 192, 384, 768]
)

optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True,
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
        },
    )
)
