"""SwinTransformer: mmdetection's names, timm's numbers, any input size, freezing, checkpointing."""

from __future__ import annotations

import pytest
import timm
import torch
from backbone_sources import (
    SWIN_KW,
    SWIN_SIZE,
    assert_features_equal,
    timm_features,
    timm_swin,
    with_out_norms,
)

from instseg.checkpoint.convert.backbones import convert_timm
from instseg.models.backbones import SwinTransformer
from instseg.models.backbones.swin_layers import shift_window_mask
from instseg.registry import MODELS


def _tiny(**kwargs) -> SwinTransformer:
    return SwinTransformer(**{**SWIN_KW, **kwargs})


def test_swin_t_has_mmdetection_keys_and_timm_parameter_count() -> None:
    with torch.device('meta'):  # shapes only: no memory, no initialisation
        model = SwinTransformer()  # Swin-T
        reference = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False)
    keys = model.state_dict().keys()
    for key in (
        'patch_embed.projection.weight',
        'patch_embed.norm.weight',
        'stages.0.blocks.0.norm1.weight',
        'stages.0.blocks.1.attn.w_msa.qkv.weight',
        'stages.0.blocks.1.attn.w_msa.proj.bias',
        'stages.2.blocks.5.attn.w_msa.relative_position_bias_table',
        'stages.2.blocks.5.attn.w_msa.relative_position_index',
        'stages.1.blocks.0.norm2.bias',
        'stages.1.blocks.0.ffn.layers.0.0.weight',
        'stages.1.blocks.0.ffn.layers.1.weight',
        'stages.0.downsample.norm.weight',
        'stages.2.downsample.reduction.weight',
        'norm0.weight',
        'norm3.bias',
    ):
        assert key in keys, key
    assert 'stages.3.downsample.reduction.weight' not in keys
    assert model.out_channels == [96, 192, 384, 768]
    assert model.strides == [4, 8, 16, 32]
    timm_params = sum(p.numel() for n, p in reference.named_parameters() if 'head' not in n)
    # timm has one final norm (768 ch); we have one per output (96 + 192 + 384 + 768 ch).
    ours = sum(p.numel() for p in model.parameters())
    assert ours == timm_params + 2 * (96 + 192 + 384)


def test_features_match_timm_after_conversion() -> None:
    reference = timm_swin()
    model = _tiny().eval()
    state = model.adapt_pretrained_state(convert_timm(reference.state_dict(), model))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Only the output norms of stages 0-2 are not in a classification model.
    assert sorted(missing) == [f'norm{i}.{p}' for i in range(3) for p in ('bias', 'weight')]
    assert unexpected == []
    x = torch.randn(2, 3, *SWIN_SIZE)
    with torch.no_grad():
        ours = model(x)
    expected = with_out_norms(model, timm_features(reference, x))
    assert_features_equal(ours, expected)
    assert [tuple(o.shape[1:]) for o in ours] == [
        (32, 32, 64),
        (64, 16, 32),
        (128, 8, 16),
        (256, 4, 8),
    ]


@pytest.mark.parametrize('size', [(50, 70), (33, 97), (224, 160)])
def test_any_input_size_gives_ceil_strides(size: tuple[int, int]) -> None:
    model = SwinTransformer(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    h, w = size
    assert [tuple(o.shape) for o in outs] == [
        (1, 16 * 2**i, -(-h // s), -(-w // s)) for i, s in enumerate((4, 8, 16, 32))
    ]
    assert all(torch.isfinite(o).all() for o in outs)


def test_padding_does_not_leak_into_a_cropped_image() -> None:
    # Appending columns to the right changes only what windows see at the right border: the
    # top-left window-aligned region of a non-shifted single-block stage is untouched.
    model = SwinTransformer(
        embed_dims=8,
        depths=(1,),
        num_heads=(1,),
        strides=(4,),
        window_size=4,
        drop_path_rate=0,
        out_indices=(0,),
    ).eval()
    x = torch.randn(1, 3, 64, 64)
    wider = torch.cat([x, torch.randn(1, 3, 64, 36)], dim=3)
    with torch.no_grad():
        (small,) = model(x)
        (large,) = model(wider)
    torch.testing.assert_close(large[..., :16], small, atol=1e-6, rtol=1e-5)


def test_shift_window_mask_separates_regions() -> None:
    mask = shift_window_mask(4, 4, window_size=2, shift_size=1, device=torch.device('cpu'))
    assert mask.shape == (4, 4, 4)
    # The first window lies inside one region; the last one (bottom right after the roll) holds
    # four wrapped-around tokens from four regions: only the diagonal is unmasked.
    assert torch.equal(mask[0], torch.zeros(4, 4))
    assert torch.equal(mask[3], torch.full((4, 4), -100.0).fill_diagonal_(0.0))
    # The top-right window holds two columns from different regions.
    assert torch.equal(mask[1] == 0, torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1]] * 2).bool())


def test_out_indices_select_stages_and_norms() -> None:
    model = _tiny(out_indices=(1, 3)).eval()
    assert model.out_channels == [64, 256]
    assert model.strides == [8, 32]
    assert not hasattr(model, 'norm0') and hasattr(model, 'norm3')
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 8, 8), (1, 256, 2, 2)]


def test_frozen_stages_freeze_stem_stages_and_their_norms() -> None:
    model = _tiny(frozen_stages=2, use_abs_pos_embed=True, pretrain_img_size=64).train()
    frozen_prefixes = (
        'patch_embed.',
        'absolute_pos_embed',
        'stages.0.',
        'stages.1.',
        'norm0.',
        'norm1.',
    )
    for name, param in model.named_parameters():
        assert param.requires_grad is not name.startswith(frozen_prefixes), name
    assert not model.stages[1].training and model.stages[2].training


def test_with_cp_gives_same_gradients_and_checkpoints_every_block(monkeypatch) -> None:
    calls = []
    original = torch.utils.checkpoint.checkpoint

    def counting(*args, **kwargs):
        calls.append(kwargs.get('use_reentrant'))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, 'checkpoint', counting)
    # Stochastic depth on: recomputation must replay the same random drops.
    plain = _tiny(drop_path_rate=0.3, frozen_stages=1).train()
    checkpointed = _tiny(drop_path_rate=0.3, frozen_stages=1, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 96)
    grads = []
    for model in (plain, checkpointed):
        torch.manual_seed(1)
        sum(out.square().mean() for out in model(x)).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    # The frozen stage 0 keeps no activations, so only stages 1-3 recompute their blocks.
    assert calls == [False] * 6
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_absolute_pos_embed_is_added_and_resized_to_the_input() -> None:
    model = _tiny(use_abs_pos_embed=True, pretrain_img_size=64, out_indices=(0,)).eval()
    assert model.absolute_pos_embed.shape == (1, 16 * 16, 32)
    x = torch.randn(1, 3, 96, 64)  # a 24 x 16 patch grid, not the 16 x 16 of pretraining
    with torch.no_grad():
        before = model(x)[0]
        model.absolute_pos_embed.normal_()
        after = model(x)[0]
    assert after.shape == (1, 32, 24, 16)
    assert not torch.allclose(before, after, atol=1e-3)


def test_pretrained_position_embedding_of_another_grid_is_resized() -> None:
    model = _tiny(use_abs_pos_embed=True, pretrain_img_size=64)
    smaller = torch.randn(1, 8 * 8, 32)  # pretrained on 32 px images
    state = model.adapt_pretrained_state({'absolute_pos_embed': smaller})
    assert state['absolute_pos_embed'].shape == (1, 16 * 16, 32)


def test_deprecated_pretrained_argument_becomes_init_cfg() -> None:
    with pytest.warns(DeprecationWarning, match='init_cfg'):
        model = _tiny(pretrained='checkpoints/swin.pth')
    assert model.init_cfg == dict(type='Pretrained', checkpoint='checkpoints/swin.pth')
    with pytest.raises(ValueError, match='not both'):
        _tiny(pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='b.pth'))


def test_registry_builds_swin_and_init_from_scratch_is_mmdetections() -> None:
    model = MODELS.build(dict(type='SwinTransformer', **SWIN_KW))
    assert isinstance(model, SwinTransformer)
    model.init_weights()
    table = model.stages[0].blocks[0].attn.w_msa.relative_position_bias_table
    assert 0.01 < table.std() < 0.03  # std 0.02, as mmdetection
    assert torch.equal(model.norm0.weight, torch.ones(32))
    assert torch.equal(model.stages[1].blocks[0].ffn.layers[1].bias, torch.zeros(64))


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        (dict(strides=(4, 2, 2, 1)), 'strides'),
        (dict(out_indices=(2, 1)), 'out_indices'),
        (dict(out_indices=(4,)), 'out_indices'),
        (dict(frozen_stages=5), 'frozen_stages'),
        (dict(num_heads=(1, 2, 4)), 'num_heads'),
        (dict(norm_cfg=dict(type='BN')), 'norm_cfg'),
        (dict(act_cfg=dict(type='ReLU')), 'act_cfg'),
        (dict(num_heads=(3, 2, 4, 8)), 'heads'),
    ],
)
def test_swin_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _tiny(**kwargs)
