# The demo Mask R-CNN with RoIPool (torchvision.ops.roi_pool: RoIs rounded to the feature grid,
# max over each bin) in place of RoIAlign for both the box and the mask head; everything else,
# seed and schedule included, is the demo's. The README compares the two.
_base_ = ['./mask_rcnn_r18_fpn_demo.py']

model = dict(
    roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=dict(_delete_=True, type='RoIPool', output_size=7)),
        mask_roi_extractor=dict(roi_layer=dict(_delete_=True, type='RoIPool', output_size=14)),
    )
)
