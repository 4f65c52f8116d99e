import pytest
import torch
from mmengine.config import ConfigDict

from instseg.models.roi_heads import Shared2FCBBoxHead, SingleRoIExtractor
from instseg.models.roi_heads.bbox_heads import multiclass_nms
from instseg.models.roi_heads.mask_heads import paste_masks


def _extractor(aligned: bool = True) -> SingleRoIExtractor:
    return SingleRoIExtractor(
        roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0, aligned=aligned),
        out_channels=1,
        featmap_strides=[4, 8, 16, 32],
    )


def test_roi_level_mapping_follows_scale() -> None:
    ext = _extractor()
    # sqrt(w*h) of 50, 112, 224, 448, 2000 px -> levels 0, 1, 2, 3, 3 (clamped)
    sides = [50, 112, 224, 448, 2000]
    rois = torch.tensor([[0, 0, 0, s, s] for s in sides], dtype=torch.float32)
    assert ext.map_roi_levels(rois, 4).tolist() == [0, 1, 2, 3, 3]


def test_roi_extractor_pools_from_the_mapped_level() -> None:
    ext = _extractor()
    # Each level is a constant map equal to its index, so the pooled value names the level used.
    feats = tuple(torch.full((1, 1, 64 // 2**i, 64 // 2**i), float(i)) for i in range(4))
    rois = torch.tensor(
        [[0, 0, 0, 20, 20], [0, 0, 0, 120, 120], [0, 0, 0, 230, 230]], dtype=torch.float
    )
    out = ext(feats, rois)
    assert out.shape == (3, 1, 7, 7)
    assert out[:, 0].mean(dim=(1, 2)).tolist() == [0.0, 1.0, 2.0]


def test_roi_extractor_aligned_flag_changes_sampling() -> None:
    feat = torch.arange(64.0).view(1, 1, 8, 8)
    feats = (feat,)
    rois = torch.tensor([[0, 1.0, 1.0, 5.0, 5.0]])
    a = SingleRoIExtractor(dict(type='RoIAlign', output_size=2, aligned=True), 1, [1])(feats, rois)
    b = SingleRoIExtractor(dict(type='RoIAlign', output_size=2, aligned=False), 1, [1])(feats, rois)
    # aligned=True shifts sampling points by half a pixel: the bin centres land 0.5 px up-left.
    assert torch.allclose(b - a, torch.full_like(a, 4.5))


def test_roi_extractor_rejects_unknown_layer() -> None:
    with pytest.raises(KeyError, match="'DeformRoIPool' is not supported"):
        SingleRoIExtractor(dict(type='DeformRoIPool', output_size=7), 256, [4])


def test_roi_pool_takes_the_max_of_each_bin_of_the_rounded_roi() -> None:
    # One 4x4 map at stride 2; the RoIs are given in image pixels (twice the map's).
    grid = [[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 1.0], [9.0, 0.0, 6.0, 7.0], [2.0, 2.0, 3.0, 5.0]]
    feats = (torch.tensor(grid)[None, None],)
    rois = torch.tensor([[0, 0.6, 0.2, 6.4, 6.9], [0, 2.0, 2.0, 6.0, 6.0]])
    extractor = SingleRoIExtractor(dict(type='RoIPool', output_size=2), 1, [2])
    pooled = extractor(feats, rois)
    # RoI 1 rounds to map cells 0..3 (4 wide): bins are the 2x2 blocks -> their maxima.
    assert pooled[0, 0].tolist() == [[5.0, 8.0], [9.0, 7.0]]
    # RoI 2 is cells 1..3 (3 wide, bins of 1.5): rows/cols [1, 3) and [2, 4) overlap at 2.
    assert pooled[1, 0].tolist() == [[8.0, 8.0], [6.0, 7.0]]
    # RoIAlign averages instead: its first bin is not the block's maximum.
    aligned = SingleRoIExtractor(dict(type='RoIAlign', output_size=2), 1, [2])(feats, rois)
    assert aligned[0, 0, 0, 0] < 5.0
    with pytest.raises(KeyError, match=r"Unknown RoIPool roi_layer keys: \['sampling_ratio'\]"):
        SingleRoIExtractor(dict(type='RoIPool', output_size=7, sampling_ratio=2), 1, [4])


def test_roi_pool_passes_gradients_to_each_bins_maximum() -> None:
    feat = torch.tensor([[1.0, 5.0], [3.0, 4.0]])[None, None].requires_grad_()
    rois = torch.tensor([[0, 0.0, 0.0, 1.0, 1.0]])
    SingleRoIExtractor(dict(type='RoIPool', output_size=1), 1, [1])((feat,), rois).sum().backward()
    assert feat.grad[0, 0].tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_paste_masks_places_box_content() -> None:
    masks = torch.ones((2, 28, 28))
    boxes = torch.tensor([[2.0, 3.0, 10.0, 7.0], [-5.0, -5.0, 4.0, 4.0]])
    out = paste_masks(masks, boxes, (12, 16))
    assert out.shape == (2, 12, 16) and out.dtype == torch.bool
    expected = torch.zeros((12, 16), dtype=torch.bool)
    expected[3:7, 2:10] = True
    assert torch.equal(out[0], expected)
    # A box partly outside the image is clipped.
    assert out[1].sum() == 16 and out[1, :4, :4].all()


def test_paste_masks_resamples_left_half() -> None:
    masks = torch.zeros((1, 28, 28))
    masks[0, :, :14] = 1.0
    out = paste_masks(masks, torch.tensor([[0.0, 0.0, 20.0, 10.0]]), (10, 20))
    assert out[0, :, :10].all() and not out[0, :, 10:].any()


def test_paste_masks_empty() -> None:
    out = paste_masks(torch.zeros((0, 28, 28)), torch.zeros((0, 4)), (5, 6))
    assert out.shape == (0, 5, 6)


def test_multiclass_nms_thresholds_and_caps() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float)
    boxes = boxes[:, None].expand(3, 2, 4)
    scores = torch.tensor([[0.9, 0.01], [0.8, 0.7], [0.02, 0.6]])
    cfg = ConfigDict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
    det = multiclass_nms(boxes, scores, cfg)
    # class 0: box 0 suppresses box 1; class 1: boxes 1 and 2 both kept; score 0.01/0.02 dropped
    pairs = sorted(zip(det.labels.tolist(), det.scores.tolist(), strict=True))
    assert [p[0] for p in pairs] == [0, 1, 1]
    assert [p[1] for p in pairs] == pytest.approx([0.9, 0.6, 0.7])
    cfg.max_per_img = 2
    assert multiclass_nms(boxes, scores, cfg).scores.tolist() == pytest.approx([0.9, 0.7])


def test_bbox_head_shapes_and_names() -> None:
    head = Shared2FCBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=7, num_classes=3)
    names = {n for n, _ in head.named_parameters()}
    assert {'shared_fcs.0.weight', 'shared_fcs.1.weight', 'fc_cls.weight', 'fc_reg.weight'} <= names
    cls, reg = head(torch.randn(5, 8, 7, 7))
    assert cls.shape == (5, 4) and reg.shape == (5, 12)


def test_predict_probs_equals_selecting_the_full_logits() -> None:
    from instseg.models.roi_heads.mask_heads import FCNMaskHead

    for agnostic in (False, True):
        head = FCNMaskHead(
            num_convs=1, in_channels=8, conv_out_channels=8, num_classes=5, class_agnostic=agnostic
        )
        head.init_weights()
        feats, labels = torch.randn(6, 8, 14, 14), torch.tensor([0, 4, 2, 2, 1, 3])
        expected = head.select_class(head(feats), labels)
        torch.testing.assert_close(head.predict_probs(feats, labels), expected)


def test_mask_head_upsampling_equals_the_transposed_conv() -> None:
    from instseg.models.roi_heads.mask_heads import FCNMaskHead

    head = FCNMaskHead(num_convs=1, in_channels=8, conv_out_channels=8, num_classes=3)
    head.init_weights()
    torch.nn.init.normal_(head.upsample.bias)
    feats = torch.randn(4, 8, 14, 14, requires_grad=True)
    ours = head(feats)
    expected = head.conv_logits(head.relu(head.upsample(head.convs[0](feats))))
    assert ours.shape == (4, 3, 28, 28)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    (g_ours,) = torch.autograd.grad(ours.sum(), feats)
    (g_expected,) = torch.autograd.grad(expected.sum(), feats)
    torch.testing.assert_close(g_ours, g_expected, atol=1e-5, rtol=1e-5)
