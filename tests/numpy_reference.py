"""Independent float64 NumPy transcriptions of SwAV's math, written from the paper's code.

These follow facebookresearch/swav `main_swav.py` line by line (plain exponentials, no log
domain, float64), so that the project's float32 log-domain implementation is checked against
a different computation of the same algorithm.
"""

import numpy as np


def sinkhorn(scores, epsilon=0.05, iterations=3):
    """`distributed_sinkhorn` on one device: Q = exp(scores / eps).T, normalise, iterate."""
    q = np.exp(np.asarray(scores, np.float64) / epsilon).T  # K x B
    q /= q.sum()
    k, b = q.shape
    for _ in range(iterations):
        q /= q.sum(axis=1, keepdims=True)
        q /= k
        q /= q.sum(axis=0, keepdims=True)
        q /= b
    q *= b
    return q.T


def _codes(out, queue_scores, j, epsilon, iterations):
    """Codes of one assignment crop; the queue (if any) is prepended, then dropped."""
    bs = out.shape[0]
    if queue_scores is not None:
        out = np.concatenate([np.asarray(queue_scores[j], np.float64), out])
    return sinkhorn(out, epsilon, iterations)[-bs:]


def log_softmax(x):
    x = np.asarray(x, np.float64)
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def swav_loss(
    crop_scores,
    crops_for_assign=(0, 1),
    temperature=0.1,
    epsilon=0.05,
    iterations=3,
    queue_scores=None,
):
    """The training loop's loss: codes per assignment crop, swapped cross-entropy."""
    crop_scores = [np.asarray(s, np.float64) for s in crop_scores]
    num_crops = len(crop_scores)
    loss = 0.0
    for j, crop_id in enumerate(crops_for_assign):
        q = _codes(crop_scores[crop_id], queue_scores, j, epsilon, iterations)
        subloss = 0.0
        for v in np.delete(np.arange(num_crops), crop_id):
            x = crop_scores[v] / temperature
            subloss -= np.mean(np.sum(q * log_softmax(x), axis=1))
        loss += subloss / (num_crops - 1)
    return loss / len(crops_for_assign)


def swav_loss_gradient(
    crop_scores, crops_for_assign=(0, 1), temperature=0.1, epsilon=0.05, iterations=3,
    queue_scores=None,
):
    """d loss / d scores for each crop, with the codes held constant (no gradient through Q).

    For a predicting crop v of codes q: d/ds_v [-mean_b sum_k q log softmax(s_v / T)]
    = (softmax(s_v / T) * sum_k q - q) / (T * B).
    """
    crop_scores = [np.asarray(s, np.float64) for s in crop_scores]
    num_crops = len(crop_scores)
    grads = [np.zeros_like(s) for s in crop_scores]
    for j, crop_id in enumerate(crops_for_assign):
        q = _codes(crop_scores[crop_id], queue_scores, j, epsilon, iterations)
        bs = q.shape[0]
        for v in np.delete(np.arange(num_crops), crop_id):
            p = np.exp(log_softmax(crop_scores[v] / temperature))
            g = (p * q.sum(axis=1, keepdims=True) - q) / (temperature * bs)
            grads[v] += g / (num_crops - 1) / len(crops_for_assign)
    return grads


def separable_blur(x, kernel):
    """Separable blur with reflect padding, one kernel `[taps]` per image, in float64."""
    radius = kernel.shape[1] // 2
    padded = np.pad(x.astype("float64"), ((0, 0), (radius,) * 2, (radius,) * 2, (0, 0)), "reflect")
    h, w = x.shape[1:3]
    out = []
    for k, image in zip(kernel, padded, strict=True):
        rows = sum(k[t] * image[t:t + h] for t in range(len(k)))
        out.append(sum(k[t] * rows[:, t:t + w] for t in range(len(k))))
    return np.stack(out)


def resized_crop(image, box, size, flip=False):
    """torchvision's `resized_crop` of one `[H, W, C]` image: bilinear, half-pixel centres.

    `box` is `(top, left, height, width)`; sample k of a side of n pixels reads coordinate
    `start + (k + 0.5) * n / size - 0.5`, clamped to the image; no antialiasing.
    """
    top, left, h, w = (float(v) for v in box)
    height, width = image.shape[:2]
    k = np.arange(size) + 0.5
    ys = np.clip(top + k * h / size - 0.5, 0, height - 1)
    xs = np.clip(left + k * w / size - 0.5, 0, width - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, height - 1), np.minimum(x0 + 1, width - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    img = image.astype("float64")
    out = ((1 - wy) * (1 - wx) * img[y0][:, x0] + (1 - wy) * wx * img[y0][:, x1]
           + wy * (1 - wx) * img[y1][:, x0] + wy * wx * img[y1][:, x1])
    return out[:, ::-1] if flip else out


def check_crop_boxes(boxes):
    """Asserts that `[20000, 4]` boxes of a 1000x1000 image follow `RandomResizedCrop` with
    area scale (0.05, 0.3) and aspect ratio (3/4, 4/3): in the image, the area uniform, the log
    aspect uniform, the position uniform over the free range (quartiles against the exact
    distribution)."""
    top, left, h, w = np.asarray(boxes, dtype=np.float64).T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 1000).all() and (left + w <= 1000).all()
    area = h * w / 1e6
    assert area.min() > 0.0495 and area.max() < 0.302  # sides are rounded to pixels
    np.testing.assert_allclose(np.quantile(area, [0.25, 0.5, 0.75]),
                               [0.1125, 0.175, 0.2375], atol=0.005)
    log_aspect = np.log(w / h)
    assert np.abs(log_aspect).max() < np.log(4 / 3) + 0.01
    np.testing.assert_allclose(np.quantile(log_aspect, [0.25, 0.5, 0.75]),
                               np.array([-0.5, 0.0, 0.5]) * np.log(4 / 3), atol=0.01)
    assert abs(np.mean(top / (1000 - h)) - 0.5) < 0.01
    assert abs(np.mean(left / (1000 - w)) - 0.5) < 0.01


def sliding_average(maps, window_h, window_w):
    """NumPy reference: PyTorch's `AvgPool2d((window_h, window_w), stride=1)` on channels-last
    maps, flattened position by position (row-major), channels last."""
    n, h, w, c = maps.shape
    rows, cols = h - window_h + 1, w - window_w + 1
    out = np.zeros((n, rows, cols, c), dtype="float64")
    for i in range(rows):
        for j in range(cols):
            window = maps[:, i:i + window_h, j:j + window_w].astype("float64")
            out[:, i, j] = window.mean(axis=(1, 2))
    return out.reshape(n, rows * cols * c)


def grid_average(maps, grid_size):
    """NumPy reference: channels-last maps averaged over `grid_size x grid_size` disjoint
    cells (row `h` of `H` in band `floor(h * grid_size / H)`, columns alike), cells row by
    row, channels last."""
    n, h, w, c = maps.shape
    out = np.zeros((n, grid_size, grid_size, c), dtype="float64")
    counts = np.zeros((grid_size, grid_size))
    for row in range(h):
        for col in range(w):
            i, j = row * grid_size // h, col * grid_size // w
            out[:, i, j] += maps[:, row, col].astype("float64")
            counts[i, j] += 1
    return (out / counts[None, :, :, None]).reshape(n, grid_size * grid_size * c)


def multi_head_swav_loss(
    crop_embeddings,
    kernels,
    crops_for_assign=(0, 1),
    temperature=0.1,
    epsilon=0.05,
    iterations=3,
    queue=None,
):
    """The loss of several prototype heads on the same embeddings, in float64.

    Head h scores every crop's `[B, D]` embeddings (and the one queue of embeddings, if any,
    `[len(crops_for_assign), Q, D]`) against its own `[D, K_h]` kernel, gets its own codes and
    swapped loss (`swav_loss`); the loss is the mean over heads, as the original averages its
    heads (`loss /= len(args.nmb_prototypes)`, `main_deepclusterv2.py`).
    """
    crop_embeddings = [np.asarray(e, np.float64) for e in crop_embeddings]
    loss = 0.0
    for kernel in kernels:
        kernel = np.asarray(kernel, np.float64)
        scores = [e @ kernel for e in crop_embeddings]
        queue_scores = None if queue is None else [np.asarray(q, np.float64) @ kernel
                                                   for q in queue]
        loss += swav_loss(scores, crops_for_assign, temperature, epsilon, iterations,
                          queue_scores=queue_scores)
    return loss / len(kernels)


def multi_head_kernel_gradients(
    crop_embeddings, kernels, crops_for_assign=(0, 1), temperature=0.1, epsilon=0.05,
    iterations=3,
):
    """d `multi_head_swav_loss` / d kernel_h for each head (codes held constant), no queue:
    sum over crops of `embeddings_v.T @ d loss_h / d scores_v`, divided by the number of heads."""
    crop_embeddings = [np.asarray(e, np.float64) for e in crop_embeddings]
    grads = []
    for kernel in kernels:
        kernel = np.asarray(kernel, np.float64)
        scores = [e @ kernel for e in crop_embeddings]
        d_scores = swav_loss_gradient(scores, crops_for_assign, temperature, epsilon, iterations)
        grads.append(sum(e.T @ g for e, g in zip(crop_embeddings, d_scores)) / len(kernels))
    return grads
