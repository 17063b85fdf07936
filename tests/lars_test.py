"""Golden tests of `swav_keras.optimizers.LARS` against a float64 NumPy LARC + SGD, per backend."""

import os

import keras
import numpy as np
import pytest

from swav_keras.optimizers.lars import LARS
from swav_keras.optimizers.schedules import warmup_cosine_decay


def larc_sgd_reference(
    params, grads_per_step, lrs, adapt, momentum, weight_decay, trust, eps, clip, nesterov
):
    """apex `LARC(SGD(...))` then `torch.optim.SGD.step`, transcribed in float64.

    `adapt[i]` False is solo-learn's `exclude_bias_n_norm` path: plain momentum SGD.
    """
    params = [np.array(p, np.float64) for p in params]
    buffers = [None] * len(params)
    for lr, grads in zip(lrs, grads_per_step):
        for i, (p, g) in enumerate(zip(params, grads)):
            d_p = np.array(g, np.float64)
            if adapt[i]:
                param_norm, grad_norm = np.linalg.norm(p), np.linalg.norm(d_p)
                if param_norm != 0 and grad_norm != 0:
                    adaptive_lr = trust * param_norm / (grad_norm + param_norm * weight_decay + eps)
                    if clip:
                        adaptive_lr = min(adaptive_lr / lr if lr else np.inf, 1.0)
                    d_p = (d_p + weight_decay * p) * adaptive_lr
            if momentum != 0:
                # torch: the first step clones d_p, later steps mul_(momentum).add_(d_p).
                buffers[i] = d_p.copy() if buffers[i] is None else momentum * buffers[i] + d_p
                d_p = d_p + momentum * buffers[i] if nesterov else buffers[i]
            p -= lr * d_p
    return params


def _case(seed=0, steps=6):
    rng = np.random.default_rng(seed)
    params = [
        rng.normal(size=(4, 3)),  # a kernel
        rng.normal(size=(3,)),  # a bias
        np.zeros((3, 2)),  # a kernel starting at zero: no trust ratio on the first step
        rng.normal(size=(2, 2)) * 50.0,  # a large kernel: local_lr > lr, clipped to 1
    ]
    grads = []
    for step in range(steps):
        step_grads = [rng.normal(size=p.shape) * s for p, s in zip(params, (1.0, 1.0, 1.0, 0.01))]
        if step == 2:
            step_grads[0] = np.zeros_like(params[0])  # zero gradient: no trust ratio
        grads.append(step_grads)
    return [p.astype("float32") for p in params], [[g.astype("float32") for g in s] for s in grads]


def _run(optimizer, params, grads_per_step):
    variables = [keras.Variable(p, name=f"v{i}") for i, p in enumerate(params)]
    for grads in grads_per_step:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    return [keras.ops.convert_to_numpy(v) for v in variables]


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("exclude_bias_and_norm", [True, False])
def test_matches_larc_sgd_with_schedule(clip, nesterov, exclude_bias_and_norm):
    params, grads = _case()
    # Warmup from 0: step 0 runs at lr = 0 (apex's clip then gives local_lr = 1).
    schedule = warmup_cosine_decay(0.5, 0.01, total_steps=6, warmup_steps=2)
    lrs = [float(schedule(step)) for step in range(len(grads))]
    config = dict(momentum=0.9, weight_decay=0.05, trust_coefficient=0.02, epsilon=1e-8)
    optimizer = LARS(
        learning_rate=schedule,
        clip=clip,
        nesterov=nesterov,
        exclude_bias_and_norm=exclude_bias_and_norm,
        **config,
    )
    got = _run(optimizer, params, grads)
    adapt = [True, not exclude_bias_and_norm, True, True]
    want = larc_sgd_reference(
        params,
        grads,
        lrs,
        adapt,
        config["momentum"],
        config["weight_decay"],
        config["trust_coefficient"],
        config["epsilon"],
        clip,
        nesterov,
    )
    for g, w, p in zip(got, want, params):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
        assert not np.allclose(g, p)  # every variable moved


def test_constant_rate_without_momentum_and_clip_branches():
    params, grads = _case(seed=1, steps=3)
    optimizer = LARS(learning_rate=0.3, momentum=0.0, weight_decay=1e-3, clip=True)
    got = _run(optimizer, params, grads)
    want = larc_sgd_reference(
        params, grads, [0.3] * 3, [True, False, True, True], 0.0, 1e-3, 0.001, 1e-8, True, False
    )
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
    assert optimizer.momentums == []


def test_weight_decay_applied_once_and_only_to_adapted():
    # Gradients zero except a tiny one: the step is dominated by the coupled weight decay.
    kernel = np.ones((2, 2), "float32")
    bias = np.ones((2,), "float32")
    grads = [[np.full((2, 2), 1e-3, "float32"), np.zeros((2,), "float32")]]
    got = _run(LARS(learning_rate=1.0, momentum=0.0, weight_decay=0.5), [kernel, bias], grads)
    want = larc_sgd_reference(
        [kernel, bias], grads, [1.0], [True, False], 0.0, 0.5, 0.001, 1e-8, False, False
    )
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_array_equal(got[1], bias)  # excluded: no weight decay
    assert got[0][0, 0] < 1.0 - 1e-4


def _model():
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    return keras.Model(inputs, outputs)


def test_exclusion_by_rank_by_name_and_by_variable():
    model = _model()
    optimizer = LARS()
    optimizer.build(model.trainable_variables)
    adapted = {v.path: optimizer.adapts(v) for v in model.trainable_variables}
    assert adapted == {
        "hidden/kernel": True,
        "hidden/bias": False,
        "bn/gamma": False,
        "bn/beta": False,
        "head/kernel": True,
        "head/bias": False,
    }

    optimizer = LARS(exclude_bias_and_norm=False)
    optimizer.exclude_from_layer_adaptation(var_names=["head"])
    optimizer.build(model.trainable_variables)
    adapted = {v.path: optimizer.adapts(v) for v in model.trainable_variables}
    assert [path for path, a in adapted.items() if not a] == ["head/kernel", "head/bias"]

    optimizer = LARS()
    optimizer.exclude_from_weight_decay(var_list=[model.get_layer("hidden").kernel])
    optimizer.build(model.trainable_variables)
    assert not optimizer.adapts(model.get_layer("hidden").kernel)
    assert optimizer.adapts(model.get_layer("head").kernel)
    with pytest.raises(ValueError, match="must be called before the optimizer is built"):
        optimizer.exclude_from_layer_adaptation(var_names=["x"])


def test_fit_matches_reference_and_decreases_loss():
    """`fit` (compiled under each backend) follows the NumPy LARC on a linear least squares."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = (x @ rng.normal(size=(3, 2)) + 0.5).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    kernel0, bias0 = (w.copy() for w in model.get_weights())
    optimizer = LARS(learning_rate=2.0, weight_decay=1e-4, trust_coefficient=0.05)
    model.compile(optimizer=optimizer, loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=8, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]

    kernel, bias = kernel0.astype(np.float64), bias0.astype(np.float64)
    params, buffers = [kernel, bias], [None, None]
    for _ in range(8):
        residual = x @ params[0] + params[1] - y
        grads = [x.T @ residual * 2 / residual.size, residual.sum(0) * 2 / residual.size]
        for i in range(2):
            params[i] = larc_sgd_reference_step(params[i], grads[i], i == 0, buffers, i)
    np.testing.assert_allclose(model.get_weights()[0], params[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.get_weights()[1], params[1], rtol=1e-4, atol=1e-5)


def larc_sgd_reference_step(p, g, adapt, buffers, i, lr=2.0, wd=1e-4, trust=0.05, momentum=0.9):
    if adapt and np.linalg.norm(p) and np.linalg.norm(g):
        local_lr = trust * np.linalg.norm(p) / (np.linalg.norm(g) + np.linalg.norm(p) * wd + 1e-8)
        g = (g + wd * p) * local_lr
    buffers[i] = g if buffers[i] is None else momentum * buffers[i] + g
    return p - lr * buffers[i]


def test_config_roundtrip_and_keras_file(tmp_path):
    schedule = warmup_cosine_decay(0.5, 0.01, total_steps=10, warmup_steps=2)
    optimizer = LARS(
        learning_rate=schedule,
        momentum=0.8,
        weight_decay=1e-5,
        trust_coefficient=0.01,
        epsilon=1e-7,
        clip=True,
        nesterov=True,
        exclude_bias_and_norm=False,
        clipnorm=1.0,
    )
    config = optimizer.get_config()
    assert config["weight_decay"] == 1e-5
    assert optimizer.weight_decay is None  # the base class's decoupled decay stays off
    restored = LARS.from_config(config)
    assert restored.get_config() == config
    for key in ("momentum", "trust_coefficient", "epsilon", "clip", "nesterov", "clipnorm"):
        assert getattr(restored, key) == getattr(optimizer, key)
    assert restored.lars_weight_decay == 1e-5
    assert float(restored.learning_rate) == pytest.approx(0.0)

    model = _model()
    optimizer = LARS(learning_rate=0.2, weight_decay=3e-6)
    optimizer.exclude_from_layer_adaptation(var_names=["head"])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, LARS)
    assert loaded.optimizer.get_config()["weight_decay"] == 3e-6
    assert int(loaded.optimizer.iterations) == 1
    assert loaded.optimizer.get_config()["exclude_from_layer_adaptation_names"] == ["head"]
    assert not loaded.optimizer.adapts(loaded.get_layer("head").kernel)
    assert loaded.optimizer.adapts(loaded.get_layer("hidden").kernel)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"momentum": -0.1}, ValueError, "`momentum` must be >= 0.0; received momentum=-0.1."),
        ({"momentum": 1.5}, ValueError, "`momentum` must be <= 1.0; received momentum=1.5."),
        (
            {"trust_coefficient": 0.0},
            ValueError,
            "`trust_coefficient` must be a positive number; received trust_coefficient=0.0.",
        ),
        (
            {"weight_decay": -1e-6},
            ValueError,
            "`weight_decay` must be >= 0.0; received weight_decay=-1e-06.",
        ),
        ({"epsilon": -1.0}, ValueError, "`epsilon` must be >= 0.0; received epsilon=-1.0."),
        (
            {"learning_rate": -0.1},
            ValueError,
            "`learning_rate` must be >= 0.0; received learning_rate=-0.1.",
        ),
        (
            {"learning_rate": "fast"},
            TypeError,
            "`learning_rate` must be a number; received learning_rate='fast'.",
        ),
        ({"clip": 1}, TypeError, "`clip` must be a boolean; received clip=1."),
        (
            {"momentum": 0.0, "nesterov": True},
            ValueError,
            "`nesterov` must be False when momentum is 0; received nesterov=True.",
        ),
    ],
)
def test_error_messages(kwargs, error, message):
    with pytest.raises(error) as info:
        LARS(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("clip,nesterov,momentum", [(False, False, 0.9), (True, True, 0.9),
                                                    (False, False, 0.0)])
def test_one_update_of_all_variables_equals_the_per_variable_update(
    monkeypatch, clip, nesterov, momentum
):
    """Under torch `apply` updates all variables with the adapter's foreach kernels
    (`native_ops().lars_update`); it must give what `update_step` per variable gives. Elsewhere
    the adapter has no native ops and both runs take the per-variable path."""
    from swav_keras import backends

    adapter = backends.active()
    assert (adapter.native_ops() is not None) == (keras.backend.backend() == "torch")
    params, grads = _case(seed=3)
    config = dict(learning_rate=0.3, momentum=momentum, weight_decay=0.05,
                  trust_coefficient=0.02, clip=clip, nesterov=nesterov)
    fused = _run(LARS(**config), params, grads)
    monkeypatch.setattr(adapter, "native_ops", lambda: None)
    looped = _run(LARS(**config), params, grads)
    for f, g, p in zip(fused, looped, params):
        np.testing.assert_allclose(f, g, rtol=1e-5, atol=1e-6)
        assert not np.allclose(f, p)
