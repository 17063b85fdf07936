r"""The main job: pretrain SwAV on Fashion-MNIST on the CPU, then evaluate it against baselines.

Command (what `scripts/main.sh` runs after setting up the environment):

    python -m recipes.main --workdir=runs/fashion_mnist

It pretrains with `--config=fashion_mnist` (any field can be overridden by a flag, as in
`recipes/pretrain.py`), then scores three representations of the same images with kNN
(k=20, cosine; majority and weighted votes) and a linear probe (top-1): the SwAV encoder, the
same encoder randomly initialised (as built, also with `--precise_bn_examples`), and raw
pixels. It prints a table with the wall time, and
writes it to `<workdir>/results.json` and `<workdir>/results.md`. Rerunning the same command
resumes an interrupted pretraining.

Figures and times on named hardware: `benchmarks/RESULTS.md`.
"""

import json
import os
import time

from absl import app, flags

from recipes import pretrain as pretrain_recipe
from recipes.builders import build_encoder
from recipes.features import load_split, score

FLAGS = flags.FLAGS


def evaluate(representations, config, data_dir, verbose="auto", strict_images=False):
    """kNN and linear top-1 of each named representation; returns rows for the table."""
    train = load_split(config.dataset, "train", data_dir, strict_images=strict_images)[:2]
    test = load_split(config.dataset, "test", data_dir, strict_images=strict_images)[:2]
    rows = []
    for name, representation in representations:
        print(f"\n== Evaluating {name}")
        start = time.time()
        rows.append({"representation": name, **score(representation, train, test, config,
                                                       verbose),
                     "seconds": time.time() - start})
    return rows


def format_table(rows, config, pretrain_seconds, total_seconds, backend):
    stages = f" ({config.stages} stages)" if config.stages != 4 else ""
    pooling = f"{config.grid_size}x{config.grid_size} grid" if (
        config.pooling == "grid") else config.pooling
    stages += f", {pooling} pooling" if config.pooling != "avg" else ""
    head = f", {config.hidden_layers} hidden layers in the head" if (
        config.hidden_layers != 1) else ""
    lines = [
        f"SwAV on {config.dataset}: {config.epochs} epochs, batch {config.batch_size}, "
        f"{config.backbone} width {config.width}{stages}{head}, K={config.num_prototypes}, "
        f"backend {backend}",
        "",
        f"| representation | kNN majority (k={config.knn_k}) | "
        f"kNN weighted (T={config.knn_temperature}) | linear top-1 "
        f"({config.linear_epochs} ep) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['representation']} | {row['knn_majority']:.2%} | "
            f"{row['knn_weighted']:.2%} | {row['linear_top1']:.2%} |"
        )
    lines += [
        "",
        f"wall time: pretraining {pretrain_seconds / 60:.1f} min, "
        f"total {total_seconds / 60:.1f} min",
    ]
    return "\n".join(lines)


def main(argv):
    del argv
    import keras

    start = time.time()
    config = pretrain_recipe.config_from_flags()
    workdir = FLAGS.workdir
    print(f"== Pretraining SwAV ({FLAGS.config}) on {keras.backend.backend()} into {workdir}")
    result = pretrain_recipe.pretrain(
        config, workdir, FLAGS.data_dir, FLAGS.train_examples, FLAGS.seed, FLAGS.resume,
        distribution=FLAGS.distribution, tpu=FLAGS.tpu,
        backup_every_steps=FLAGS.backup_every_steps,
        conv_implementation=FLAGS.conv_implementation, allow_changed=FLAGS.allow_changed,
        strict_images=FLAGS.strict_images, deterministic=FLAGS.deterministic,
    )
    if result["distribution"].process_index != 0:
        return  # process 0 evaluates and writes the table
    from swav_keras import backends
    from swav_keras.data.image_checks import bad_images

    with backends.active().process_local():  # on this process alone (multi-host JAX)
        keras.utils.set_random_seed(FLAGS.seed)
        random_encoder = build_encoder(config, result["info"])
        # As built, also with --precise_bn_examples: PreciseBN lowers a random encoder's kNN,
        # which would flatter SwAV's row.
        rows = evaluate(
            [
                ("SwAV encoder", result["encoder_path"]),
                ("random-init encoder", random_encoder),
                ("raw pixels", "pixels"),
            ],
            config,
            FLAGS.data_dir,
            strict_images=FLAGS.strict_images,
        )
    bad = bad_images(os.path.expanduser(config.dataset))  # met by pretraining or evaluation
    total = time.time() - start
    table = format_table(rows, config, result["seconds"], total, keras.backend.backend())
    print("\n" + table)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump({"rows": rows, "pretrain_seconds": result["seconds"], "total_seconds": total,
                   "backend": keras.backend.backend(), "history": result["history"],
                   "bad_images": len(bad), "bad_image_files": bad}, f,
                  indent=2, default=float)


if __name__ == "__main__":
    pretrain_recipe.define_flags()
    flags.FLAGS.set_default("workdir", "runs/fashion_mnist")
    app.run(main)
