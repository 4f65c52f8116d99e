import pytest
from mmengine.registry import DefaultScope

from instseg.registry import DATASETS, MODELS, TASK_UTILS, TRANSFORMS


def test_types_build_by_name_through_lazy_locations() -> None:
    coder = TASK_UTILS.build(dict(type='DeltaXYWHBBoxCoder'))
    assert type(coder).__name__ == 'DeltaXYWHBBoxCoder'
    assert MODELS.get('MaskRCNN') is not None
    assert DATASETS.get('CocoDataset') is not None
    assert TRANSFORMS.get('PackDetInputs') is not None


def test_misspelled_type_names_registry_and_closest_names() -> None:
    with pytest.raises(KeyError) as err:
        MODELS.build(dict(type='MaskRCN'))
    message = str(err.value)
    assert 'instseg::model' in message and 'MaskRCNN' in message


def test_misspelled_nested_type_is_reported() -> None:
    with pytest.raises(KeyError) as err:
        MODELS.build(
            dict(type='RPNHead', in_channels=8, loss_bbox=dict(type='SmoothL1Los', loss_weight=1.0))
        )
    assert 'SmoothL1Loss' in str(err.value)


def test_default_scope_finds_instseg_types_from_mmengine_root() -> None:
    from mmengine.registry import MODELS as ROOT_MODELS

    with DefaultScope.overwrite_default_scope('instseg'):
        model = ROOT_MODELS.build(dict(type='FPN', in_channels=[8, 16], out_channels=8, num_outs=2))
    assert type(model).__module__.startswith('instseg.')
