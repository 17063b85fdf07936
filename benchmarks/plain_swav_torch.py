"""The SwAV training step written in plain PyTorch: the yardstick of `step_vs_pytorch.py`.

The original's training step (`main_swav.py` of facebookresearch/swav): prototypes
normalised at the start of the step, one backbone pass per resolution group (same-size crops
concatenated), the head and the prototypes once on all crops, Sinkhorn codes of the two
high-resolution crops without gradient, the swapped-prediction loss, `backward` and
`torch.optim.SGD` with momentum; under bfloat16, the forward pass in `torch.autocast` and the
loss in float32, as the original's apex/AMP step. The two networks have the layout and
parameters of swav_keras's own: `torch_small_resnet` of `swav_keras.backbones.SmallResNet`
(3x3 stride-1 stem, BasicBlocks [2, 2, 2, 2], 1x1 conv shortcuts, no bias) and
`torch_resnet50` of `swav_keras.backbones.ResNet50` (Keras's ResNet-50: v1, stride on the
first 1x1 conv, convolutions with biases); BatchNorm momentum 0.1 in PyTorch terms, eps 1e-5.
`tests/step_vs_pytorch_test.py` loads swav_keras weights into them (`copy_keras_weights`) and
checks that both compute the same thing.
"""

TEMPERATURE, EPSILON, SINKHORN_ITERATIONS = 0.1, 0.05, 3


def torch_small_resnet(width, channels=1):
    """`swav_keras.backbones.SmallResNet(width)` in plain PyTorch (same layout and shapes)."""
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = None
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))

    layers = [nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    cin = width
    for stage, multiplier in enumerate((1, 2, 4, 8)):
        for block in range(2):
            layers.append(Block(cin, width * multiplier, 2 if stage > 0 and block == 0 else 1))
            cin = width * multiplier
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


def torch_resnet50(channels=3):
    """`swav_keras.backbones.ResNet50()` in plain PyTorch: Keras's ResNet-50 (v1, biases)."""
    import torch.nn as nn
    import torch.nn.functional as F

    class Bottleneck(nn.Module):
        def __init__(self, cin, filters, stride, shortcut):
            super().__init__()
            self.shortcut = None
            if shortcut:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, 4 * filters, 1, stride),
                                              nn.BatchNorm2d(4 * filters))
            self.conv1, self.bn1 = nn.Conv2d(cin, filters, 1, stride), nn.BatchNorm2d(filters)
            self.conv2 = nn.Conv2d(filters, filters, 3, 1, 1)
            self.bn2 = nn.BatchNorm2d(filters)
            self.conv3 = nn.Conv2d(filters, 4 * filters, 1)
            self.bn3 = nn.BatchNorm2d(4 * filters)

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = F.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))

    # Keras pads with zeros before its max pooling; after a ReLU that equals PyTorch's padding.
    layers = [nn.Conv2d(channels, 64, 7, 2, 3), nn.BatchNorm2d(64), nn.ReLU(),
              nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for filters, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for block in range(blocks):
            layers.append(Bottleneck(cin, filters, stride if block == 0 else 1, block == 0))
            cin = 4 * filters
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


def torch_swav_model(backbone, features, hidden, projection, num_prototypes):
    """`backbone` (to `features`), head `Linear -> BatchNorm1d -> ReLU -> Linear` and
    bias-free prototypes; `forward(crops)` returns the scores of all crops, concatenated."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.head = nn.Sequential(
                nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                nn.Linear(hidden, projection),
            )
            self.prototypes = nn.Linear(projection, num_prototypes, bias=False)

        def forward(self, crops):
            groups = []  # consecutive crops of one size (high-resolution first), as the original
            for size in sorted({c.shape[-1] for c in crops}, reverse=True):
                groups.append(self.backbone(torch.cat([c for c in crops if c.shape[-1] == size])))
            embeddings = F.normalize(self.head(torch.cat(groups)), dim=1, p=2)
            return self.prototypes(embeddings)

    return Net()


def torch_sinkhorn(scores, epsilon=EPSILON, iterations=SINKHORN_ITERATIONS):
    """The original's `distributed_sinkhorn` on one process: codes `[B, K]` of `scores`."""
    import torch

    with torch.no_grad():
        q = torch.exp(scores.float() / epsilon).t()
        q /= q.sum()
        k, b = q.shape
        for _ in range(iterations):
            q /= q.sum(dim=1, keepdim=True)
            q /= k
            q /= q.sum(dim=0, keepdim=True)
            q /= b
        return (q * b).t()


def torch_swav_loss(output, batch, num_crops, crops_for_assign=(0, 1)):
    """The original's swapped-prediction loss of `output` (`[num_crops * B, K]` scores),
    computed in float32."""
    import torch
    import torch.nn.functional as F

    output = output.float()
    loss = 0.0
    for crop_id in crops_for_assign:
        q = torch_sinkhorn(output[batch * crop_id:batch * (crop_id + 1)].detach())
        subloss = 0.0
        for view in range(num_crops):
            if view != crop_id:
                x = output[batch * view:batch * (view + 1)] / TEMPERATURE
                subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
        loss += subloss / (num_crops - 1)
    return loss / len(crops_for_assign)


def torch_step(model, optimizer, crops, autocast_dtype=None):
    """One training step of the original: returns the loss (a detached tensor). With
    `autocast_dtype` (e.g. `torch.bfloat16`) the forward pass runs under `torch.autocast`."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        weight = model.prototypes.weight.data.clone()
        model.prototypes.weight.copy_(F.normalize(weight, dim=1, p=2))
    device = crops[0].device.type
    with torch.autocast(device, dtype=autocast_dtype or torch.float32,
                        enabled=autocast_dtype is not None):
        output = model(crops)
    loss = torch_swav_loss(output, crops[0].shape[0], len(crops))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def copy_keras_weights(swav, model):
    """Loads a built `swav_keras.SwAV` into `torch_swav_model`'s net, its encoder a
    `SmallResNet` (into `torch_small_resnet`) or a `ResNet50` (into `torch_resnet50`).

    Keras layers are matched by name (`conv1`, `conv{stage}_block{block}_{index}`), kernels
    turned from `[kh, kw, in, out]` to `[out, in, kh, kw]`, dense kernels transposed.
    """
    import torch

    with torch.no_grad():
        _copy_backbone(swav.encoder, model.backbone)
        head = swav.projection_head
        hidden, output = head.hidden, head.output_layer
        model.head[0].weight.copy_(_tensor(hidden.kernel).T)
        model.head[0].bias.copy_(_tensor(hidden.bias))
        _copy_bn(model.head[1], head.batchnorm)
        model.head[3].weight.copy_(_tensor(output.kernel).T)
        model.head[3].bias.copy_(_tensor(output.bias))
        model.prototypes.weight.copy_(_tensor(swav.prototypes.kernel).T)


def _copy_backbone(encoder, backbone):
    """Keras encoder -> `torch_small_resnet` or `torch_resnet50` (see `copy_keras_weights`)."""
    _copy_conv_bn(encoder, backbone[0], backbone[1], "conv1")
    blocks = [m for m in backbone if hasattr(m, "shortcut")]
    stage_sizes = {8: (2, 2, 2, 2), 16: (3, 4, 6, 3)}[len(blocks)]
    index = 0
    for stage, size in enumerate(stage_sizes):
        for block in range(size):
            prefix = f"conv{stage + 2}_block{block + 1}"
            module = blocks[index]
            index += 1
            if module.shortcut is not None:
                _copy_conv_bn(encoder, module.shortcut[0], module.shortcut[1], prefix + "_0")
            for part in (1, 2, 3):
                if hasattr(module, f"conv{part}"):
                    _copy_conv_bn(encoder, getattr(module, f"conv{part}"),
                                  getattr(module, f"bn{part}"), f"{prefix}_{part}")


def _copy_conv_bn(encoder, conv, bn, prefix):
    layer = encoder.get_layer(prefix + "_conv")
    conv.weight.copy_(_tensor(layer.kernel).permute(3, 2, 0, 1))
    if conv.bias is not None:
        conv.bias.copy_(_tensor(layer.bias))
    _copy_bn(bn, encoder.get_layer(prefix + "_bn"))


def _tensor(variable):
    import keras
    import torch

    return torch.from_numpy(keras.ops.convert_to_numpy(variable).copy())


def _copy_bn(torch_bn, keras_bn):
    for name, source in (("weight", keras_bn.gamma), ("bias", keras_bn.beta),
                         ("running_mean", keras_bn.moving_mean),
                         ("running_var", keras_bn.moving_variance)):
        getattr(torch_bn, name).copy_(_tensor(source))
