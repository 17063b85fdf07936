"""The poolings of `benchmarks/knn_by_pooling.py`: each is the encoder's own when it ends in it."""

import keras
import numpy as np
import numpy_reference as ref
import pytest

from benchmarks import knn_by_pooling
from swav_keras.backbones import SmallResNet


@pytest.mark.parametrize("pooling,kwargs,name", [
    ("avg", {}, "avg"), ("corners", {}, "corners"), ("grid", {"grid_size": 3}, "grid3"),
])
def test_pooling_the_last_map_gives_the_encoders_own_output(pooling, kwargs, name):
    keras.utils.set_random_seed(0)
    encoder = SmallResNet(4, (None, None, 1), stages=3, pooling=pooling, **kwargs)
    images = np.random.default_rng(0).uniform(0, 1, (5, 28, 28, 1)).astype("float32")
    maps = knn_by_pooling.last_maps(encoder, images, chunk=2)
    assert maps.shape == (5, 7, 7, 16)
    pooled = knn_by_pooling.pool(maps, knn_by_pooling.pooling_layer(name), chunk=2)
    own = keras.ops.convert_to_numpy(encoder(images))
    np.testing.assert_allclose(pooled, own, rtol=1e-4, atol=1e-5)


def test_grid_names_pool_disjoint_cells_and_avg_is_the_global_average():
    maps = np.random.default_rng(1).normal(size=(3, 7, 7, 2)).astype("float32")
    for grid in (1, 2, 4, 7):
        got = knn_by_pooling.pool(maps, knn_by_pooling.pooling_layer(f"grid{grid}"), chunk=2)
        np.testing.assert_allclose(got, ref.grid_average(maps, grid), rtol=1e-5, atol=1e-6)
    # Seven cells a side of a 7x7 map: the map itself, flattened.
    seven = knn_by_pooling.pool(maps, knn_by_pooling.pooling_layer("grid7"), chunk=3)
    np.testing.assert_allclose(seven, maps.reshape(3, -1), rtol=1e-6)
    average = knn_by_pooling.pool(maps, knn_by_pooling.pooling_layer("avg"), chunk=3)
    np.testing.assert_allclose(average, maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["max", "grid0", "grid", "grid2x2", 2])
def test_unknown_pooling_names_are_refused(name):
    with pytest.raises(ValueError) as error:
        knn_by_pooling.pooling_layer(name)
    assert str(error.value) == (
        "Each pooling must be `avg`, `corners` or `gridG` with G a positive integer; "
        f"received {name!r}."
    )


def test_an_encoder_without_a_final_pooling_is_refused():
    inputs = keras.Input((8, 8, 1))
    encoder = keras.Model(inputs, keras.layers.Flatten(name="flat")(inputs))
    with pytest.raises(ValueError) as error:
        knn_by_pooling.last_map_model(encoder)
    assert str(error.value) == (
        "`encoder` must end in one of ('GlobalAveragePooling2D', 'CornerAveragePooling2D', "
        "'GridAveragePooling2D'), whose input map is pooled here; received an encoder whose "
        "last layer is Flatten 'flat'."
    )
