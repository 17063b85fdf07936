"""Tests of `swav_keras.layers.ProjectionHead`: NumPy golden, depth, saving, errors."""

import h5py
import keras
import numpy as np
import pytest

from swav_keras.layers import ProjectionHead


def _numpy_head(head, x, training):
    """Float64 transcription: (x W + b -> BatchNorm -> ReLU) per block, then x W + b."""
    x = np.asarray(x, np.float64)
    suffixes = [""] + [f"_{i}" for i in range(2, head.hidden_layers + 1)] if head.hidden_dim else []
    weights = {w.path.split("/", 1)[1]: keras.ops.convert_to_numpy(w).astype(np.float64)
               for w in head.weights}
    for suffix in suffixes:
        x = x @ weights[f"hidden{suffix}/kernel"] + weights[f"hidden{suffix}/bias"]
        bn = f"batchnorm{suffix}"
        if training:
            mean, var = x.mean(axis=0), x.var(axis=0)
        else:
            mean, var = weights[f"{bn}/moving_mean"], weights[f"{bn}/moving_variance"]
        x = (x - mean) / np.sqrt(var + head.batchnorm_epsilon)
        x = np.maximum(x * weights[f"{bn}/gamma"] + weights[f"{bn}/beta"], 0.0)
    return x @ weights["output/kernel"] + weights["output/bias"]


def _randomise(head, seed):
    rng = np.random.default_rng(seed)
    for w in head.weights:
        values = rng.normal(0.0, 0.5, w.shape)
        if "variance" in w.path:
            values = rng.uniform(0.5, 2.0, w.shape)
        w.assign(values.astype("float32"))


@pytest.mark.parametrize("hidden_layers", [1, 2, 3])
@pytest.mark.parametrize("training", [True, False])
def test_matches_numpy_reference(hidden_layers, training):
    head = ProjectionHead(hidden_dim=12, output_dim=5, hidden_layers=hidden_layers)
    head.build((None, 7))
    _randomise(head, seed=hidden_layers)
    x = np.random.default_rng(10 + hidden_layers).normal(size=(16, 7)).astype("float32")
    got = keras.ops.convert_to_numpy(head(x, training=training))
    np.testing.assert_allclose(got, _numpy_head(head, x, training), rtol=2e-4, atol=2e-4)


def test_layer_names_and_weight_count_per_depth():
    for depth in (1, 2, 3):
        head = ProjectionHead(hidden_dim=6, output_dim=3, hidden_layers=depth)
        head.build((None, 4))
        names = [w.path.split("/", 1)[1] for w in head.weights]
        expected = []
        for index in range(1, depth + 1):
            suffix = "" if index == 1 else f"_{index}"
            expected += [f"hidden{suffix}/kernel", f"hidden{suffix}/bias"] + [
                f"batchnorm{suffix}/{v}" for v in ("gamma", "beta", "moving_mean",
                                                   "moving_variance")]
        assert names == expected + ["output/kernel", "output/bias"]
        assert head.compute_output_shape((None, 4)) == (None, 3)
    linear = ProjectionHead(hidden_dim=0, output_dim=3)
    linear.build((None, 4))
    assert [w.path.split("/", 1)[1] for w in linear.weights] == ["output/kernel", "output/bias"]


def test_one_block_keeps_the_saved_weights_layout(tmp_path):
    # The file layout a one-block head wrote before `hidden_layers` existed.
    head = ProjectionHead(8, 4)
    model = keras.Sequential([keras.Input((6,)), head])
    path = str(tmp_path / "head.weights.h5")
    model.save_weights(path)
    keys = []
    with h5py.File(path) as f:
        f.visit(lambda k: keys.append(k) if isinstance(f[k], h5py.Dataset) else None)
    prefix = "layers/projection_head/"
    assert sorted(keys) == sorted(
        [prefix + f"batchnorm/vars/{i}" for i in range(4)]
        + [prefix + f"hidden/vars/{i}" for i in range(2)]
        + [prefix + f"output_layer/vars/{i}" for i in range(2)]
    )


def test_config_round_trip_and_keras_file(tmp_path):
    head = ProjectionHead(hidden_dim=10, output_dim=4, hidden_layers=2, batchnorm_momentum=0.8,
                          batchnorm_epsilon=1e-3, sync_batchnorm=True, name="head")
    config = head.get_config()
    for key, value in dict(hidden_dim=10, output_dim=4, hidden_layers=2, batchnorm_momentum=0.8,
                           batchnorm_epsilon=1e-3, sync_batchnorm=True).items():
        assert config[key] == value, key
    clone = ProjectionHead.from_config(config)
    assert clone.get_config() == config
    assert [type(b).__name__ for b in (clone.batchnorm, clone.deeper_layers[1])] == [
        "SyncBatchNormalization"] * 2
    model = keras.Sequential([keras.Input((5,)), ProjectionHead(10, 4, hidden_layers=2)])
    _randomise(model.layers[0], seed=3)
    path = str(tmp_path / "head.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)),
                               keras.ops.convert_to_numpy(model(x, training=False)), atol=1e-6)


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(hidden_layers=0), ValueError,
     "`hidden_layers` must be a positive integer; received hidden_layers=0."),
    (dict(hidden_layers=2.0), TypeError,
     "`hidden_layers` must be an integer; received hidden_layers=2.0."),
    (dict(hidden_dim=0, hidden_layers=2), ValueError,
     "`hidden_layers` must be 1 when `hidden_dim=0` (a linear head has no hidden block); "
     "received hidden_layers=2."),
    (dict(hidden_dim=-1), ValueError,
     "`hidden_dim` must be an integer >= 0; received hidden_dim=-1."),
    (dict(sync_batchnorm=1), TypeError,
     "`sync_batchnorm` must be a bool; received sync_batchnorm=1."),
])
def test_bad_arguments(kwargs, error, text):
    with pytest.raises(error) as info:
        ProjectionHead(**{"hidden_dim": 8, "output_dim": 4, **kwargs})
    assert str(info.value) == text
