r"""What PreciseBN changes in saved encoders: kNN and linear top-1 before and after.

Workload: each given `.keras` encoder (from `recipes/pretrain.py`, or `random:W` for a freshly
initialised one of width W), scored on the full
Fashion-MNIST split (60k train / 10k test) as the main job scores it (kNN k=20 cosine,
majority and weighted T=0.07; linear probe, `--linear_epochs`), first as saved, then after
`swav_keras.evaluation.precise_batch_norm` on the first `--examples` training images, which is
what `recipes/pretrain.py --precise_bn_examples=N` does before writing `encoder.keras`. Both
scores come from the same process, so the difference is PreciseBN's alone (the linear probe
is seeded, so it starts from the same classifier).

Command (2 CPU cores, about 2-3 minutes per encoder with TensorFlow):

    python -m experiments.precise_bn_gain --encoders=runs/a/encoder.keras,runs/b/encoder.keras

Figures are recorded in `benchmarks/RESULTS.md`.
"""

import platform
import time

from absl import app, flags

from benchmarks.machine import cpu_name
from recipes.features import ENCODER_SPEC_HELP

FLAGS = flags.FLAGS
flags.DEFINE_list("encoders", [],
                  f"The encoders to score, comma-separated: each {ENCODER_SPEC_HELP}.")
flags.DEFINE_integer("examples", 20000, "Training images PreciseBN computes on (the first N).")
flags.DEFINE_integer("linear_epochs", 30, "Epochs of the linear probe (the main job's 30).")
flags.DEFINE_string("data_dir", None, "Folder of the Fashion-MNIST files.")


def main(argv):
    del argv
    if not FLAGS.encoders:
        raise app.UsageError("--encoders: give at least one .keras encoder.")
    import keras

    from recipes import configs
    from recipes.features import load_encoder, load_split, score
    from swav_keras.evaluation import precise_batch_norm

    print(f"Workload: PreciseBN on the first {FLAGS.examples} Fashion-MNIST training images; "
          f"kNN k=20 and a {FLAGS.linear_epochs}-epoch linear probe on 60k/10k.")
    print(f"Backend {keras.backend.backend()}, keras {keras.__version__}, "
          f"{cpu_name()} ({platform.machine()}), Python {platform.python_version()}")
    # The main job's scoring: kNN k=20, T=0.07 (the config's), the linear probe's epochs.
    config = configs.get_config("fashion_mnist", linear_epochs=FLAGS.linear_epochs)
    *train, info = load_split("fashion_mnist", "train", FLAGS.data_dir)
    test = load_split("fashion_mnist", "test", FLAGS.data_dir)[:2]
    columns = ("knn_majority", "knn_weighted", "linear_top1")
    print("| encoder | kNN majority | kNN weighted | linear top-1 | PreciseBN time |")
    print("|---|---|---|---|---|")
    for path in FLAGS.encoders:
        encoder = load_encoder(path, info)
        before = score(encoder, train, test, config, verbose=0)
        start = time.perf_counter()
        precise_batch_norm(encoder, train[0], num_examples=FLAGS.examples)
        seconds = time.perf_counter() - start
        after = score(encoder, train, test, config, verbose=0)
        cells = [f"{before[c]:.2%} -> {after[c]:.2%} ({(after[c] - before[c]) * 100:+.2f})"
                 for c in columns]
        print(f"| {path} | {' | '.join(cells)} | {seconds:.1f} s |", flush=True)


if __name__ == "__main__":
    app.run(main)
