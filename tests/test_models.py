"""Architecture tests: published parameter counts, shapes, init, save/reload."""

import keras
import numpy as np
import pytest

from zoo.models import create_backbone, create_classifier, list_architectures
from zoo.objectives import create_objective
from zoo.registry import RegistryError


def _trainable_count(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def test_resnet50_has_the_published_parameter_count():
    # ResNet-50 v1.5 with a 1000-class head: 25,557,032 trainable parameters
    # (the torchvision / TF Model Garden count; BN moving statistics excluded).
    model = create_classifier("resnet50", create_objective("softmax"), 1000)
    assert _trainable_count(model) == 25_557_032
    assert model.output["pre_logits"].shape[-1] == 2048


@pytest.mark.parametrize("size,final", [(32, 1), (64, 2), (96, 3), (224, 7)])
def test_resnet50_output_shapes(size, final):
    backbone = create_backbone("resnet50", width_multiplier=0.125)
    out = backbone(np.zeros((2, size, size, 3), np.float32))
    assert out["block4_unit3"].shape == (2, final, final, 256)
    assert out["pre_logits"].shape == (2, 256)
    assert out["block1_unit1"].shape[1] == -(-size // 4)


def test_resnet50_endpoints_are_named_and_ordered():
    backbone = create_backbone("resnet50", width_multiplier=0.25)
    names = list(backbone.output)
    units = [n for n in names if n.startswith("block")]
    assert len(units) == 16  # 3 + 4 + 6 + 3 bottleneck blocks
    assert units[0] == "block1_unit1" and units[-1] == "block4_unit3"
    assert "stem" in names and "pre_logits" in names


def test_resnet50_v15_details():
    backbone = create_backbone("resnet50", width_multiplier=0.25)
    bns = [x for x in backbone.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert all(bn.momentum == 0.9 and bn.epsilon == 1e-5 for bn in bns)
    last_bns = [bn for bn in bns if bn.name.endswith("_bn3")]
    assert len(last_bns) == 16
    for bn in last_bns:  # zero-initialised gamma of the last BN of each block
        assert np.all(keras.ops.convert_to_numpy(bn.gamma) == 0)
    convs = [x for x in backbone.layers if isinstance(x, keras.layers.Conv2D)]
    assert not any(c.use_bias for c in convs)
    # v1.5: the stride of a downsampling block sits on the 3x3 conv
    assert backbone.get_layer("block2_unit1_conv2").strides == (2, 2)
    assert backbone.get_layer("block2_unit1_conv1").strides == (1, 1)


def test_save_and_reload_give_identical_outputs(tmp_path):
    model = create_classifier(
        "resnet50", create_objective("cosine_softmax"), 5, width_multiplier=0.125
    )
    images = np.random.RandomState(0).uniform(size=(3, 32, 32, 3)).astype("float32")
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    a, b = model(images), reloaded(images)
    np.testing.assert_array_equal(a["logits"], b["logits"])
    np.testing.assert_array_equal(a["pre_logits"], b["pre_logits"])


def test_unknown_architecture_is_a_one_line_error():
    with pytest.raises(RegistryError, match="unknown architecture 'resnet51'"):
        create_backbone("resnet51")
    assert "resnet50" in list_architectures()
