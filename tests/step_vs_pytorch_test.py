"""The plain PyTorch step (`benchmarks/plain_swav_torch.py`) computes what swav_keras computes.

The benchmark's ratio means something only if its plain step is the same method on the same
network: with the weights of a swav_keras model loaded into it, it must give the same scores,
codes and loss on the same crops, under every Keras backend (torch itself is imported
directly: it is installed with the project's test environment).
"""

import keras
import numpy as np
import pytest
import torch

import swav_keras
from benchmarks import fixed_batches
from benchmarks import plain_swav_torch as plain
from benchmarks import step_vs_pytorch as bench
from swav_keras.backbones import ResNet50, SmallResNet
from swav_keras.sinkhorn import sinkhorn

WIDTH, K, BATCH = 4, 16, 8
SMALL = bench.WORKLOADS["small"]
HIDDEN, PROJECTION = SMALL["hidden"], SMALL["projection"]


def models(seed=0):
    keras.utils.set_random_seed(seed)
    swav = swav_keras.SwAV(
        SmallResNet(width=WIDTH, input_shape=(None, None, 1)), projection_dim=PROJECTION,
        hidden_dim=HIDDEN, num_prototypes=K, temperature=plain.TEMPERATURE,
        epsilon=plain.EPSILON, sinkhorn_iterations=plain.SINKHORN_ITERATIONS,
    )
    crops = bench._crops(BATCH, seed)
    swav(crops, training=False)  # builds
    net = plain.torch_swav_model(plain.torch_small_resnet(WIDTH), 8 * WIDTH, HIDDEN,
                                 PROJECTION, K)
    plain.copy_keras_weights(swav, net)
    return swav, net, crops


def nchw(crops):
    return [torch.from_numpy(c).permute(0, 3, 1, 2) for c in crops]


def test_torch_resnet_has_the_keras_encoder_parameters():
    swav, net, _ = models()
    keras_sizes = sorted(int(np.prod(v.shape)) for v in swav.encoder.weights)
    torch_sizes = sorted(
        [p.numel() for p in net.backbone.parameters()]
        + [b.numel() for n, b in net.backbone.named_buffers() if "num_batches" not in n]
    )
    assert keras_sizes == torch_sizes


def test_plain_step_scores_and_loss_equal_swav_keras_on_the_same_weights():
    swav, net, crops = models()
    for training in (False, True):
        net.train(training)
        y_pred = swav(crops, training=training)
        want_scores = np.concatenate([keras.ops.convert_to_numpy(s) for s in y_pred["scores"]])
        want_loss = float(keras.ops.convert_to_numpy(swav.compute_loss(y_pred=y_pred,
                                                                        training=False)))
        with torch.no_grad():
            output = net(nchw(crops))
            loss = float(plain.torch_swav_loss(output, BATCH, len(crops)))
        np.testing.assert_allclose(output.numpy(), want_scores, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(loss, want_loss, rtol=1e-5)


def test_plain_sinkhorn_equals_swav_keras_sinkhorn():
    scores = np.random.default_rng(3).uniform(-1, 1, (BATCH, K)).astype("float32")
    want = keras.ops.convert_to_numpy(sinkhorn(scores, plain.EPSILON, plain.SINKHORN_ITERATIONS))
    got = plain.torch_sinkhorn(torch.from_numpy(scores)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), np.ones(BATCH), rtol=1e-5)


def test_plain_step_normalises_the_prototypes_first():
    _, net, crops = models()
    with torch.no_grad():
        net.prototypes.weight.mul_(3.0)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0, momentum=0.9)
    loss = float(plain.torch_step(net, optimizer, nchw(crops)))
    # With a zero learning rate the step leaves the weights as it normalised them.
    norms = net.prototypes.weight.detach().norm(dim=1).numpy()
    np.testing.assert_allclose(norms, np.ones(K), rtol=1e-5)
    assert np.isfinite(loss) and loss > 0


def test_jit_compile_is_refused_under_torch_only():
    swav, _, _ = models()
    if keras.backend.backend() == "torch":
        for call in (lambda: swav.compile(optimizer="sgd", jit_compile=True),
                     lambda: swav.compile("sgd", None, None, None, None, False, 1, True)):
            with pytest.raises(ValueError) as error:
                call()
            assert str(error.value).startswith(
                "`jit_compile` must be False or 'auto' with the torch backend; received "
                "jit_compile=True. torch.compile recompiles"
            )
        swav.compile(optimizer="sgd")  # "auto": eager under torch
        assert swav.jit_compile is False
    else:
        swav.compile(optimizer="sgd", jit_compile=True)
        assert swav.jit_compile is True


def test_torch_resnet50_computes_the_keras_resnet50_on_the_same_weights():
    keras.utils.set_random_seed(1)
    encoder = ResNet50(input_shape=(None, None, 3))
    rng = np.random.default_rng(1)
    for layer in encoder.layers:  # every copied variable away from its initial value
        if isinstance(layer, keras.layers.BatchNormalization):
            for variable, low, high in ((layer.gamma, 0.5, 1.5), (layer.beta, -0.1, 0.1),
                                        (layer.moving_mean, -0.1, 0.1),
                                        (layer.moving_variance, 0.5, 1.5)):
                variable.assign(rng.uniform(low, high, variable.shape).astype("float32"))
        elif isinstance(layer, keras.layers.Conv2D):
            layer.bias.assign(rng.uniform(-0.1, 0.1, layer.bias.shape).astype("float32"))
    net = plain.torch_resnet50()
    keras_sizes = sorted(int(np.prod(v.shape)) for v in encoder.weights)
    torch_sizes = sorted(
        [p.numel() for p in net.parameters()]
        + [b.numel() for n, b in net.named_buffers() if "num_batches" not in n]
    )
    assert keras_sizes == torch_sizes
    with torch.no_grad():
        plain._copy_backbone(encoder, net)
    images = rng.uniform(0, 1, (2, 64, 64, 3)).astype("float32")
    for training in (False, True):
        net.train(training)
        want = keras.ops.convert_to_numpy(encoder(images, training=training))
        with torch.no_grad():
            got = net(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
        # Against the features' scale. Training: the last stage's batch statistics come from 8
        # values per channel (2 images, 2x2), and Keras's and PyTorch's variance formulas
        # round differently; a wrong layout or weight is off by the features' own size.
        tolerance = 1e-3 if training else 1e-5
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * np.abs(want).max())


def test_plain_step_under_bfloat16_autocast_keeps_a_float32_loss():
    _, net, crops = models()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    loss = plain.torch_step(net, optimizer, nchw(crops), torch.bfloat16)
    assert loss.dtype == torch.float32 and np.isfinite(float(loss))


def test_fixed_batch_generator_feeds_fit_on_every_backend():
    # The form used where TensorFlow is not installed (the lent GPU machine).
    swav, _, crops = models()
    swav.compile(optimizer=keras.optimizers.SGD(0.1))
    batches = fixed_batches._generator((crops,))
    first = next(batches)
    assert keras.ops.is_tensor(first[0][0]) and next(batches)[0][0] is first[0][0]
    history = swav.fit(batches, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][-1])


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="one backend's child process is enough; JAX's compiles for 30 s")
def test_benchmark_runs_the_resnet50_workload():
    """The GPU workload's whole path (both systems, bfloat16, the table), at toy sizes."""
    import subprocess
    import sys

    from benchmarks import children

    backend = keras.backend.backend()
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.step_vs_pytorch", "--workload=resnet50",
         "--crop_sizes=32,32", "--batch_size=2", "--steps=1", "--rounds=1", "--warmup_steps=1",
         f"--backends={backend}", "--layers=native", "--nomemory"],
        cwd=children.ROOT, env=children.environment(backend), capture_output=True, text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    assert ("workload: ResNet-50, crops 2x32 + 6x32 (3 channels), head 2048->2048->128, "
            "K=3000") in out
    assert "mixed_bfloat16" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(backend + " ")]
    systems = [row[1] for row in rows if row[1] != "device:"]
    layers = "native" if backend == "torch" else "keras"
    assert systems == ["pytorch", f"swav_keras/{backend}/{layers}"]
    for row in rows:
        if row[1] != "device:":
            assert float(row[2]) > 0 and np.isfinite(float(row[-2]))
