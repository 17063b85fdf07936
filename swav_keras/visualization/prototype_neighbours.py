"""A PNG of what SwAV's clusters hold: the images nearest to each of the most used prototypes."""

import keras
import numpy as np
from matplotlib.figure import Figure

from swav_keras.validation import check_int
from swav_keras.visualization.multicrops import (
    check_images,
    check_value_range,
    save,
    show_image,
)

_CELL_INCHES = 0.9


def plot_prototype_neighbours(
    images,
    embeddings,
    prototypes,
    path,
    num_prototypes=8,
    neighbours=8,
    counts=None,
    labels=None,
    class_names=None,
    value_range=(0.0, 255.0),
):
    """Draws, for the most used prototypes, the images nearest to each, and writes a PNG.

    SwAV's prototypes are cluster centres nobody labelled; looking at the images each one
    attracts shows whether they hold a class, a pose, a background, or nothing (collapse:
    one prototype takes everything). Prototypes are ranked by use: `counts` when given (e.g.
    Sinkhorn assignments counted over an epoch), else the number of images whose best match
    (argmax of cosine similarity) they are. Row `r` shows the r-th most used prototype: its
    count and share at the left, then its `neighbours` most similar images by cosine
    similarity (written under each image, with its label when `labels` are given); the
    images need not be assigned to that prototype. Uses matplotlib's Agg canvas.

    Args:
        images: array `[N, H, W, C]`, C = 1 or 3, pixel values in `value_range`.
        embeddings: array `[N, D]`, the projection head's outputs for `images` (normalised
            or not: cosine similarity is used).
        prototypes: array `[K, D]`, one prototype per row. A `Prototypes` layer's kernel is
            `[D, K]`: pass its transpose.
        path: where to write the PNG (parent folders are created).
        num_prototypes: positive int <= K, rows drawn. Defaults to `8`.
        neighbours: positive int <= N, images per row. Defaults to `8`.
        counts: optional array `[K]` of non-negative use counts. Defaults to `None`: argmax
            assignments of `embeddings`.
        labels: optional integer array `[N]` of class ids, written under the images.
            Defaults to `None`.
        class_names: optional sequence of names indexed by label. Defaults to `None`.
        value_range: `(low, high)` pixel values drawn black and white. Defaults to
            `(0.0, 255.0)`.

    Returns:
        `path`.

    Example:

    ```python
    import keras
    from swav_keras.visualization import plot_prototype_neighbours

    z = model.l2_normalize(model.projection_head(model.encoder(images)))
    kernel = keras.ops.convert_to_numpy(model.prototypes.kernel)  # [D, K]
    plot_prototype_neighbours(images, z, kernel.T, "clusters.png", labels=labels)
    ```

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020.
    """
    images = check_images("images", images)
    embeddings = _check_matrix("embeddings", embeddings, "[N, D]")
    prototypes = _check_matrix("prototypes", prototypes, "[K, D]")
    if len(embeddings) != len(images):
        raise ValueError(
            f"`embeddings` must hold one row per image ({len(images)}); "
            f"received embeddings.shape={embeddings.shape}."
        )
    dim = embeddings.shape[1]
    if prototypes.shape[1] != dim:
        raise ValueError(
            f"`prototypes` must be [K, D] with D = {dim}, the embeddings' size (a Prototypes "
            f"kernel [D, K] must be transposed); received prototypes.shape={prototypes.shape}."
        )
    num_images, num_all = len(images), len(prototypes)
    num_prototypes = check_int("num_prototypes", num_prototypes, minimum=1)
    if num_prototypes > num_all:
        raise ValueError(
            f"`num_prototypes` must be <= the number of prototypes ({num_all}); "
            f"received num_prototypes={num_prototypes}."
        )
    neighbours = check_int("neighbours", neighbours, minimum=1)
    if neighbours > num_images:
        raise ValueError(
            f"`neighbours` must be <= the number of images ({num_images}); "
            f"received neighbours={neighbours}."
        )
    if labels is not None:
        labels = np.asarray(labels).reshape(-1) if np.ndim(labels) == 2 else np.asarray(labels)
        if labels.shape != (num_images,):
            raise ValueError(
                f"`labels` must hold one label per image ({num_images}); "
                f"received labels.shape={labels.shape}."
            )
    low, high = check_value_range(value_range)

    similarity = _normalize(embeddings) @ _normalize(prototypes).T  # [N, K] cosine
    if counts is None:
        counts = np.bincount(np.argmax(similarity, axis=1), minlength=num_all)
    counts = np.asarray(counts, dtype="float64")
    if counts.shape != (num_all,):
        raise ValueError(
            f"`counts` must be an array [K] with K = {num_all} (one per prototype); "
            f"received counts.shape={counts.shape}."
        )
    bad = np.flatnonzero(~(np.isfinite(counts) & (counts >= 0)))
    if len(bad):
        raise ValueError(
            "`counts` must hold non-negative finite numbers; "
            f"received counts[{bad[0]}]={counts[bad[0]]}."
        )
    total = max(counts.sum(), 1e-12)
    ranked = np.argsort(-counts, kind="stable")[:num_prototypes]  # ties: smaller id first

    cell = _CELL_INCHES
    left, top = 1.1, 0.15
    width = left + neighbours * cell + 0.1
    height = top + num_prototypes * (cell + 0.22) + 0.1
    figure = Figure(figsize=(width, height))
    for row, k in enumerate(ranked):
        nearest = np.argsort(-similarity[:, k], kind="stable")[:neighbours]
        y0 = height - top - (row + 1) * (cell + 0.22) + 0.22
        figure.text(
            (left - 0.1) / width,
            (y0 + cell / 2) / height,
            f"prototype {k}\n{counts[k]:.0f} ({100 * counts[k] / total:.1f}%)",
            ha="right",
            va="center",
            fontsize=7,
        )
        for col, i in enumerate(nearest):
            axes = figure.add_axes(
                [
                    (left + col * cell + 0.03) / width,
                    y0 / height,
                    (cell - 0.06) / width,
                    (cell - 0.06) / height,
                ]
            )
            show_image(axes, images[i], low, high)
            caption = f"{similarity[i, k]:.2f}"
            if labels is not None:
                name = labels[i]
                if class_names is not None and 0 <= int(name) < len(class_names):
                    name = class_names[int(name)]
                caption = f"{name} {caption}"
            axes.set_xlabel(caption, fontsize=6, labelpad=1)
    return save(figure, path)


def _check_matrix(name, value, layout):
    if keras.ops.is_tensor(value):  # e.g. a torch tensor that requires grad
        value = keras.ops.convert_to_numpy(value)
    array = np.asarray(value, dtype="float64")
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(
            f"`{name}` must be a 2-D array {layout}; received {name}.shape={array.shape}."
        )
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        row, col = (int(i) for i in bad[0])
        raise ValueError(
            f"`{name}` must hold only finite values; "
            f"received {name}[{row}, {col}]={array[row, col]}."
        )
    return array


def _normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
