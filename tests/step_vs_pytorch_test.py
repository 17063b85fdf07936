"""The plain PyTorch step of `benchmarks/step_vs_pytorch.py` computes what swav_keras computes.

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
from benchmarks import step_vs_pytorch as bench
from swav_keras.backbones import SmallResNet
from swav_keras.sinkhorn import sinkhorn

WIDTH, K, BATCH = 4, 16, 8


def models(seed=0):
    keras.utils.set_random_seed(seed)
    swav = swav_keras.SwAV(
        SmallResNet(width=WIDTH, input_shape=(None, None, 1)), projection_dim=bench.PROJECTION,
        hidden_dim=bench.HIDDEN, num_prototypes=K, temperature=bench.TEMPERATURE,
        epsilon=bench.EPSILON, sinkhorn_iterations=bench.SINKHORN_ITERATIONS,
    )
    crops = bench._crops(BATCH, seed)
    swav(crops, training=False)  # builds
    plain = bench.torch_swav_model(WIDTH, K)
    bench.copy_keras_weights(swav, plain)
    return swav, plain, crops


def nchw(crops):
    return [torch.from_numpy(c).permute(0, 3, 1, 2) for c in crops]


def test_torch_resnet_has_the_keras_encoder_parameters():
    swav, plain, _ = models()
    keras_sizes = sorted(int(np.prod(v.shape)) for v in swav.encoder.weights)
    torch_sizes = sorted(
        [p.numel() for p in plain.backbone.parameters()]
        + [b.numel() for n, b in plain.backbone.named_buffers() if "num_batches" not in n]
    )
    assert keras_sizes == torch_sizes


def test_plain_step_scores_and_loss_equal_swav_keras_on_the_same_weights():
    swav, plain, crops = models()
    for training in (False, True):
        plain.train(training)
        y_pred = swav(crops, training=training)
        want_scores = np.concatenate([keras.ops.convert_to_numpy(s) for s in y_pred["scores"]])
        want_loss = float(keras.ops.convert_to_numpy(swav.compute_loss(y_pred=y_pred,
                                                                        training=False)))
        with torch.no_grad():
            output = plain(nchw(crops))
            loss = float(bench.torch_swav_loss(output, BATCH, len(crops)))
        np.testing.assert_allclose(output.numpy(), want_scores, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(loss, want_loss, rtol=1e-5)


def test_plain_sinkhorn_equals_swav_keras_sinkhorn():
    scores = np.random.default_rng(3).uniform(-1, 1, (BATCH, K)).astype("float32")
    want = keras.ops.convert_to_numpy(sinkhorn(scores, bench.EPSILON, bench.SINKHORN_ITERATIONS))
    got = bench.torch_sinkhorn(torch.from_numpy(scores)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), np.ones(BATCH), rtol=1e-5)


def test_plain_step_normalises_the_prototypes_first():
    _, plain, crops = models()
    with torch.no_grad():
        plain.prototypes.weight.mul_(3.0)
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.0, momentum=0.9)
    loss = float(bench.torch_step(plain, optimizer, nchw(crops)))
    # With a zero learning rate the step leaves the weights as it normalised them.
    norms = plain.prototypes.weight.detach().norm(dim=1).numpy()
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
