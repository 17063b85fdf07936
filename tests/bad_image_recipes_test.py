"""A folder with bad files, through the recipes: skipped, named and counted, or refused by name."""

import json
import os
import re

import numpy as np
import pytest
from absl import flags
from backend_runs import ONCE
from image_folders import add_bad_files
from PIL import Image

from recipes import configs
from recipes import main as main_job
from recipes import pretrain as pretrain_recipe
from recipes.features import load_split
from recipes.knn_eval import knn_eval
from recipes.linear_eval import linear_eval
from swav_keras.data.image_checks import BadImageError, BadImageWarning

TINY = dict(  # tests/recipes_test.py's tiny run: two steps of 64
    width=4, projection_dim=16, hidden_dim=32, num_prototypes=20, batch_size=64,
    num_crops=(2, 2), crop_sizes=(28, 14), freeze_prototypes_steps=2, queue_length=0,
    epochs=1, warmup_epochs=0.0, base_learning_rate=1.0, final_learning_rate=0.001,
    linear_epochs=1, knn_k=5,
)
REASONS = (r"TensorFlow cannot decode it \(Invalid PNG data, size \d+\)", r"empty file \(0 bytes\)",
           r"not a PNG, JPEG, GIF, BMP or WebP file \(it starts with b'not an i'\)")


@pytest.fixture
def bad_folder(tmp_path):
    """130 training and 40 test Fashion-MNIST PNGs, with a truncated PNG deep in `train/`
    (after the first images), an empty file and a text file named .png."""
    root = tmp_path / "images"
    for split, count in (("train", 130), ("test", 40)):
        images, labels, _ = load_split("fashion_mnist", split, None, take=count)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / ("a" if label < 5 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[..., 0]).save(folder / f"{i:04d}.png")
    deep = sorted((root / "train" / "b").glob("*.png"))[40]
    return root, add_bad_files(root / "train", deep)


# The files are read the same way under every backend (TensorFlow's decoder where it is
# installed; tests/recipes_test.py reads a folder without it): the main job runs once.
@ONCE
def test_main_job_skips_names_and_counts_each_bad_file(bad_folder, tmp_path, capsys,
                                                       monkeypatch):
    root, bad = bad_folder

    def evaluate(representations, config, data_dir, verbose="auto", strict_images=False):
        # The readers only (the scores are tested elsewhere): the jit of three encoders
        # and probes would triple the test's time.
        for split in ("train", "test"):
            np.asarray(load_split(config.dataset, split, data_dir, strict_images=strict_images)[0])
        return [{"representation": name, "knn_majority": 0.5, "knn_weighted": 0.5,
                 "linear_top1": 0.5} for name, _ in representations]

    monkeypatch.setattr(main_job, "evaluate", evaluate)
    workdir = tmp_path / "run"
    if "strict_images" not in flags.FLAGS:
        pretrain_recipe.define_flags()
    arguments = [f"--{name}={','.join(map(str, value)) if isinstance(value, tuple) else value}"
                 for name, value in TINY.items()]
    flags.FLAGS(["main", f"--dataset={root}", f"--workdir={workdir}", *arguments])
    with pytest.warns(BadImageWarning) as caught:
        main_job.main([])
    for path, reason in zip(bad, REASONS, strict=True):  # each named once, in a warning
        named = [w for w in caught if re.fullmatch(
            f"Skipping image {re.escape(path)}: {reason}.", str(w.message))]
        assert len(named) == 1, path
    assert "Bad images: 3 files skipped (named in the warnings above)." in capsys.readouterr().out
    results = json.loads((workdir / "results.json").read_text())
    assert results["bad_images"] == 3 and sorted(results["bad_image_files"]) == sorted(bad)
    log = (workdir / "training_log.csv").read_text().splitlines()
    assert len(log) == 2 and "nan" not in log[1]  # the epoch ran (two full steps of 64)


def test_strict_images_refuses_by_name_before_training(bad_folder, tmp_path):
    root, (truncated, empty, text) = bad_folder
    config = configs.get_config("fashion_mnist", dataset=str(root), **TINY)
    workdir = tmp_path / "run"
    with pytest.raises(BadImageError, match=f"^Cannot read image {re.escape(empty)}: empty "
                                            r"file \(0 bytes\) \(strict_images: remove"):
        pretrain_recipe.pretrain(config, str(workdir), verbose=0, strict_images=True)
    assert not workdir.exists()  # refused before anything was written
    os.remove(empty)
    os.remove(text)  # as the user does; the statistics decode the truncated file next
    with pytest.raises(BadImageError, match=f"^Cannot read image {re.escape(truncated)}: "
                                            "TensorFlow cannot decode it"):
        pretrain_recipe.pretrain(config, str(workdir), verbose=0, strict_images=True)
    assert not workdir.exists()
    with pytest.raises(TypeError, match=r"^`strict_images` must be a bool; received "
                                        r"strict_images='no'.$"):
        pretrain_recipe.pretrain(config, str(workdir), verbose=0, strict_images="no")


def test_knn_and_linear_readers_skip_or_refuse_bad_files(bad_folder, recwarn):
    root, (truncated, empty, text) = bad_folder
    images, labels, info = load_split(str(root), "train")
    assert len(images) == len(labels) == info.num_examples == 130  # the two added left out
    np.asarray(images)  # decodes all: the truncated file's row holds the next good image
    assert any(f"Skipping image {truncated}: OSError" in str(w.message) for w in recwarn.list)
    scores = knn_eval("pixels", dataset=str(root), k=5, verbose=0)
    assert scores["weighted"] > 0.5  # two labels: the rows still follow their images
    top = linear_eval("pixels", dataset=str(root), epochs=1, verbose=0)
    assert 0 <= top["top1"] <= 1
    for evaluate in (knn_eval, linear_eval):
        with pytest.raises(BadImageError, match=f"^Cannot read image {re.escape(empty)}: "):
            evaluate("pixels", dataset=str(root), verbose=0, strict_images=True)
