"""Tests of `SkipNonFiniteOptimizer`: a step with a NaN/Inf gradient changes nothing."""

import keras
import numpy as np
import pytest

from swav_keras.optimizers import LARS, SkipNonFiniteOptimizer


def numpy(variables):
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_step_leaves_weights_and_state_as_they_were(bad):
    inner = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.01)
    optimizer = SkipNonFiniteOptimizer(inner)
    weights = [keras.Variable(np.array([1.0, -2.0], "float32")),
               keras.Variable(np.full((2, 2), 0.5, "float32"))]
    good = [np.array([0.3, 0.1], "float32"), np.ones((2, 2), "float32")]
    optimizer.apply([keras.ops.array(g) for g in good], weights)  # momentum is non-zero now
    before = numpy(weights) + numpy(optimizer.variables)
    grads = [np.array([bad, 0.1], "float32"), np.ones((2, 2), "float32")]
    optimizer.apply([keras.ops.array(g) for g in grads], weights)
    after = numpy(weights) + numpy(optimizer.variables)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 1


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_check_finite_is_numpys_isfinite_over_every_gradient(bad, dtype):
    # Under torch this is the adapter's one foreach kernel; elsewhere the generic ops.
    grads = [np.full((3, 2), 3e38, "float32"), np.zeros((0, 4), "float32"),
             np.linspace(-1, 1, 7).astype("float32"), np.ones((2, 2, 2), "float32")]
    if bad is not None:
        grads[2][4] = bad
    tensors = [keras.ops.cast(keras.ops.array(g), dtype if i else "float32")
               for i, g in enumerate(grads)]
    finite = SkipNonFiniteOptimizer(keras.optimizers.SGD(0.1)).check_finite(
        [None] + tensors)
    expected = all(np.isfinite(g).all() for g in grads)
    assert bool(keras.ops.convert_to_numpy(finite)) is expected


def test_check_finite_of_no_gradient_or_only_empty_ones_is_true():
    optimizer = SkipNonFiniteOptimizer(keras.optimizers.SGD(0.1))
    assert bool(keras.ops.convert_to_numpy(optimizer.check_finite([None])))
    empty = [keras.ops.zeros((0, 3)), keras.ops.zeros((2, 0))]
    assert bool(keras.ops.convert_to_numpy(optimizer.check_finite(empty)))


def test_finite_steps_are_the_inner_optimizers():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4)).astype("float32")
    grads = [rng.normal(size=(3, 4)).astype("float32") for _ in range(3)]
    runs = []
    for wrap in (False, True):
        optimizer = LARS(0.5, momentum=0.9, weight_decay=1e-4)
        optimizer = SkipNonFiniteOptimizer(optimizer) if wrap else optimizer
        weight = keras.Variable(start)
        for g in grads:
            optimizer.apply([keras.ops.array(g)], [weight])
        runs.append(keras.ops.convert_to_numpy(weight))
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                    reason="TensorFlow's optimizers have no stateless_apply (JAX's fit path)")
def test_stateless_apply_skips_too():
    optimizer = SkipNonFiniteOptimizer(keras.optimizers.SGD(0.1, momentum=0.9))
    weight = keras.Variable(np.array([1.0, 2.0], "float32"))
    optimizer.build([weight])
    state = [keras.ops.convert_to_tensor(v) for v in optimizer.variables]
    (new_weight,), new_state = optimizer.stateless_apply(
        state, [keras.ops.array([float("nan"), 1.0])], [keras.ops.convert_to_tensor(weight)])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(new_weight), [1.0, 2.0])
    for a, b in zip(new_state, state):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))
    (new_weight,), new_state = optimizer.stateless_apply(
        state, [keras.ops.array([1.0, 1.0])], [keras.ops.convert_to_tensor(weight)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new_weight), [0.9, 1.9], rtol=1e-6)


def test_get_config_round_trip():
    optimizer = SkipNonFiniteOptimizer(LARS(0.3, momentum=0.8), name="guarded")
    config = optimizer.get_config()
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(clone, SkipNonFiniteOptimizer) and clone.name == "guarded"
    assert isinstance(clone.inner_optimizer, LARS)
    assert clone.inner_optimizer.get_config()["momentum"] == 0.8
    assert SkipNonFiniteOptimizer.from_config(config).get_config() == config
    assert float(keras.ops.convert_to_numpy(optimizer.scale_loss(2.5))) == 2.5


@pytest.mark.parametrize("bad", ["sgd", keras.optimizers.LossScaleOptimizer(
    keras.optimizers.SGD())])
def test_inner_optimizer_must_be_an_optimizer_that_skips_nothing(bad):
    with pytest.raises(TypeError, match=r"^`inner_optimizer` must be a "
                                        r"keras.optimizers.Optimizer that skips no steps "
                                        r"itself \(not a LossScaleOptimizer\); received "
                                        r"inner_optimizer="):
        SkipNonFiniteOptimizer(bad)


def test_checkpoints_hold_the_inner_state_once_and_load_both_ways(tmp_path):
    def compiled(wrap):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        optimizer = LARS(0.1, momentum=0.9)
        model.compile(optimizer=SkipNonFiniteOptimizer(optimizer) if wrap else optimizer,
                      loss="mse")
        return model

    data = (np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"))
    for wrap in (True, False):
        trained = compiled(wrap)
        trained.fit(*data, epochs=2, verbose=0)
        path = str(tmp_path / f"wrapped_{wrap}.weights.h5")
        trained.save_weights(path)
        other = compiled(not wrap)
        other.optimizer.build(other.trainable_variables)
        other.load_weights(path)
        inner = getattr(trained.optimizer, "inner_optimizer", trained.optimizer)
        loaded = getattr(other.optimizer, "inner_optimizer", other.optimizer)
        for a, b in zip(numpy(inner.variables), numpy(loaded.variables), strict=True):
            np.testing.assert_array_equal(a, b)
        assert int(keras.ops.convert_to_numpy(loaded.iterations)) == 2
    import h5py

    with h5py.File(tmp_path / "wrapped_True.weights.h5") as f:
        names = []
        f.visit(names.append)
    assert "optimizer/vars/0" in names and not any("inner_optimizer" in n for n in names)


def test_apply_to_the_variables_it_was_built_with():
    optimizer = SkipNonFiniteOptimizer(keras.optimizers.SGD(0.1))
    weight = keras.Variable(np.array([1.0, 2.0], "float32"))
    optimizer.build([weight])
    optimizer.apply([keras.ops.array([1.0, 1.0])])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weight), [0.9, 1.9], rtol=1e-6)
    optimizer.apply([keras.ops.array([float("nan"), 1.0])])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weight), [0.9, 1.9], rtol=1e-6)

