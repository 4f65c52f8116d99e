"""DetDataPreprocessor: normalisation values, channel order, padding and metainfo."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from instseg.models.data_preprocessor import DetDataPreprocessor
from instseg.registry import MODELS
from instseg.structures.det_data_sample import DetDataSample


def _image(height: int, width: int) -> torch.Tensor:
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8)


def test_bgr_to_rgb_and_normalisation_values() -> None:
    preprocessor = DetDataPreprocessor(
        mean=[1.0, 2.0, 3.0], std=[2.0, 4.0, 8.0], bgr_to_rgb=True, pad_size_divisor=1
    )
    # Channels as loaded by OpenCV: B, G, R.
    image = torch.tensor(
        [[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [10, 11]]], dtype=torch.uint8
    )
    out = preprocessor(dict(inputs=[image]))
    assert out['inputs'].dtype == torch.float32
    assert out['data_samples'] is None
    # mean/std apply in RGB order: (R - 1) / 2, (G - 2) / 4, (B - 3) / 8.
    assert out['inputs'][0].tolist() == [
        [[3.5, 4.0], [4.5, 5.0]],
        [[0.5, 0.75], [1.0, 1.25]],
        [[-0.375, -0.25], [-0.125, 0.0]],
    ]


def test_registry_builds_with_mmdetection_config() -> None:
    preprocessor = MODELS.build(
        dict(
            type='DetDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_size_divisor=32,
        )
    )
    out = preprocessor(dict(inputs=[torch.full((3, 4, 4), 200, dtype=torch.uint8)]))
    assert out['inputs'].shape == (1, 3, 32, 32)
    torch.testing.assert_close(out['inputs'][0, 0, 0, 0], torch.tensor((200 - 123.675) / 58.395))
    torch.testing.assert_close(out['inputs'][0, 2, 0, 0], torch.tensor((200 - 103.53) / 57.375))


def test_padding_to_32_and_metainfo() -> None:
    preprocessor = DetDataPreprocessor(mean=[0.0] * 3, std=[1.0] * 3, pad_value=7)
    images = [_image(50, 70), _image(64, 64)]
    samples = [DetDataSample(metainfo=dict(img_shape=(50, 70))), DetDataSample()]
    out = preprocessor(dict(inputs=images, data_samples=samples), training=True)
    inputs = out['inputs']
    assert inputs.shape == (2, 3, 64, 96)
    assert inputs.dtype == torch.float32
    # Images sit at the top left; padding (after normalisation) fills the rest.
    assert torch.equal(inputs[0, :, :50, :70], images[0].float())
    assert torch.equal(inputs[1, :, :64, :64], images[1].float())
    assert inputs[0, :, 50:].eq(7).all() and inputs[0, :, :, 70:].eq(7).all()
    assert inputs[1, :, :, 64:].eq(7).all()
    assert len(out['data_samples']) == 2
    assert [s.batch_input_shape for s in out['data_samples']] == [(64, 96), (64, 96)]
    # pad_shape is each image's own size rounded up to 32, as in mmdetection.
    assert [s.pad_shape for s in out['data_samples']] == [(64, 96), (64, 64)]
    assert out['data_samples'][0].img_shape == (50, 70)


def test_stacked_tensor_input_is_padded() -> None:
    preprocessor = DetDataPreprocessor(pad_size_divisor=16)
    batch = torch.randint(0, 256, (2, 3, 20, 33), dtype=torch.uint8)
    samples = [DetDataSample(), DetDataSample()]
    out = preprocessor(dict(inputs=batch, data_samples=samples))
    assert out['inputs'].shape == (2, 3, 32, 48)
    assert [s.pad_shape for s in out['data_samples']] == [(32, 48), (32, 48)]
    assert torch.equal(out['inputs'][:, :, :20, :33], batch.float())


class _Double(nn.Module):
    """A batch augmentation that doubles the inputs and tags the samples."""

    def forward(self, inputs, data_samples):
        for sample in data_samples:
            sample.set_metainfo(dict(doubled=True))
        return inputs * 2, data_samples


def test_batch_augments_apply_only_in_training() -> None:
    preprocessor = DetDataPreprocessor(batch_augments=[dict(type=_Double)])
    image = torch.full((3, 32, 32), 3, dtype=torch.uint8)

    test_out = preprocessor(dict(inputs=[image], data_samples=[DetDataSample()]))
    assert test_out['inputs'].eq(3).all()
    assert 'doubled' not in test_out['data_samples'][0]

    train_out = preprocessor(dict(inputs=[image], data_samples=[DetDataSample()]), training=True)
    assert train_out['inputs'].eq(6).all()
    assert train_out['data_samples'][0].doubled


def test_follows_the_module_device_and_dtype() -> None:
    preprocessor = DetDataPreprocessor(mean=[1.0] * 3, std=[1.0] * 3).to('meta')
    out = preprocessor(dict(inputs=[_image(8, 8)]))
    assert out['inputs'].device.type == 'meta'
    assert out['inputs'].shape == (1, 3, 32, 32)


def test_bad_input_raises_clear_errors() -> None:
    preprocessor = DetDataPreprocessor()
    with pytest.raises(TypeError, match='"inputs"'):
        preprocessor([_image(8, 8)])
    with pytest.raises(ValueError, match='2 inputs but 1 data_samples'):
        preprocessor(dict(inputs=[_image(8, 8), _image(8, 8)], data_samples=[DetDataSample()]))
