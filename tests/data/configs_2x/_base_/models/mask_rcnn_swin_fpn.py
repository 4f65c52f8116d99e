# Swin-Transformer-Object-Detection dialect: Mask R-CNN with that repository's SwinTransformer
# argument names (embed_dim, ape, use_checkpoint) and `pretrained` at the model level.
_base_ = './mask_rcnn_r50_fpn.py'

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        embed_dim=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4.0,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.2,
        ape=False,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        use_checkpoint=False,
    ),
    neck=dict(in_channels=[96, 192, 384, 768]),
)
