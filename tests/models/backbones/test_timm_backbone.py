"""TimmBackbone: any timm features_only model, NCHW outputs, published channels and strides."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from instseg.models.backbones import TimmBackbone
from instseg.registry import MODELS


@pytest.mark.parametrize(
    ('name', 'channels'),
    [('mobilenetv2_100', [24, 32, 96, 320]), ('tf_efficientnetv2_b0', [32, 48, 112, 192])],
)
def test_default_out_indices_are_the_last_four_levels(name: str, channels: list[int]) -> None:
    model = TimmBackbone(name).eval()
    assert model.out_indices == (1, 2, 3, 4)
    assert model.out_channels == channels
    assert model.strides == [4, 8, 16, 32]
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [
        (1, c, 64 // s, 96 // s) for c, s in zip(channels, model.strides, strict=True)
    ]


def test_out_indices_select_levels() -> None:
    model = MODELS.build(
        dict(type='TimmBackbone', model_name='mobilenetv2_100', out_indices=(0, 2))
    )
    assert model.out_channels == [16, 32]
    assert model.strides == [2, 8]
    outs = model.eval()(torch.randn(1, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 16, 16), (1, 32, 4, 4)]


def test_channels_last_models_come_out_nchw() -> None:
    # timm's Swin returns NHWC features; the backbone permutes them.
    model = TimmBackbone(
        'swin_tiny_patch4_window7_224',
        img_size=(64, 96),
        embed_dim=16,
        depths=(1, 1, 1, 1),
        num_heads=(1, 1, 2, 2),
    ).eval()
    assert model.channels_last
    assert model.out_channels == [16, 32, 64, 128]
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 16, 24), (1, 32, 8, 12), (1, 64, 4, 6),
                                              (1, 128, 2, 3)]  # fmt: skip


def test_local_weights_of_the_whole_timm_model_load(tmp_path) -> None:
    # A Hugging Face style file: the whole classifier's state dict in safetensors.
    source = timm.create_model('mobilenetv2_100', pretrained=False).eval()
    path = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))

    model = TimmBackbone('mobilenetv2_100', pretrained=str(path)).eval()
    model.init_weights()
    reference = timm.create_model('mobilenetv2_100', features_only=True, out_indices=(1, 2, 3, 4))
    reference.load_state_dict(source.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for ours, theirs in zip(model(x), reference.eval()(x), strict=True):
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert torch.equal(model.timm_model.conv_stem.weight, source.conv_stem.weight)


def test_pretrained_true_would_download_and_is_refused() -> None:
    with pytest.raises(ValueError, match='download'):
        TimmBackbone('mobilenetv2_100', pretrained=True)


def test_bad_out_indices_name_the_model() -> None:
    with pytest.raises(ValueError, match='mobilenetv2_100'):
        TimmBackbone('mobilenetv2_100', out_indices=(1, 9))
    with pytest.raises(ValueError, match='increase'):
        TimmBackbone('mobilenetv2_100', out_indices=(3, 1))
