"""Tests of `ImageFiles`: an image folder read from disk only when indexed, as `load_arrays`."""

import re

import keras
import numpy as np
import pytest
from image_folders import write_folder
from no_tensorflow import other_backend, run_without_tensorflow
from PIL import Image

from swav_keras.data import ImageBatches, ImageFiles, load_arrays
from swav_keras.data.image_checks import BadImageWarning


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_lazy_folder_equals_the_in_memory_one(tmp_path, mode):
    write_folder(tmp_path / "train", [(6, 7)] * 7, mode)
    write_folder(tmp_path / "test", [(6, 7)] * 3, mode)
    for split, take in (("train", None), ("train", 4), ("test", None)):
        files, labels, info = load_arrays(str(tmp_path), split, take=take, lazy=True)
        images, expected_labels, expected_info = load_arrays(str(tmp_path), split, take=take)
        assert isinstance(files, ImageFiles) and files.dtype == np.uint8
        assert files.shape == images.shape and len(files) == len(images)
        np.testing.assert_array_equal(files[:], images)
        np.testing.assert_array_equal(np.asarray(files), images)
        np.testing.assert_array_equal(labels, expected_labels)
        assert info == expected_info  # statistics of the training split, class names


def test_indexing_follows_numpy_and_reads_only_what_it_selects(tmp_path):
    paths = write_folder(tmp_path, [(5, 4)] * 6)
    expected = np.stack([np.asarray(Image.open(path)) for path in paths])
    files = ImageFiles(paths)
    assert files.shape == (6, 5, 4, 3) and files.ndim == 4 and files.color_mode == "rgb"
    np.testing.assert_array_equal(files[2], expected[2])
    np.testing.assert_array_equal(files[-1], expected[-1])
    np.testing.assert_array_equal(files[1:5:2], expected[1:5:2])
    np.testing.assert_array_equal(files[np.array([4, 0, 4])], expected[[4, 0, 4]])
    assert files[np.array([], int)].shape == (0, 5, 4, 3)
    with pytest.raises(IndexError):
        files[6]
    np.testing.assert_array_equal(ImageFiles(np.array(paths))[:], expected)  # any sequence
    picked = files.select(slice(3, None))
    assert isinstance(picked, ImageFiles) and picked.paths == tuple(paths[3:])
    np.testing.assert_array_equal(picked[0], expected[3])
    Image.fromarray(np.zeros((5, 4), "uint8"), "L").save(paths[1])  # a grayscale file
    np.testing.assert_array_equal(files[1], np.zeros((5, 4, 3)))  # decoded to RGB
    with open(paths[4], "wb") as file:
        file.write(b"not a png")
    lazy = ImageFiles(paths)  # only the first file's header is read
    want = expected[:4].copy()
    want[1] = 0
    np.testing.assert_array_equal(lazy[:4], want)
    with pytest.warns(BadImageWarning, match=f"Skipping image {re.escape(paths[4])}: "):
        np.testing.assert_array_equal(lazy[4], expected[5])  # the next good file fills it
    with pytest.raises(ValueError, match=f"Cannot read image {re.escape(paths[4])}: "):
        ImageFiles(paths, strict_images=True)[4]


def test_sizes_and_colour_modes(tmp_path):
    paths = write_folder(tmp_path, [(6, 7), (8, 5), (6, 7)])
    in_memory, _, _ = load_arrays(str(tmp_path))  # float32, resized to the first's size
    files = ImageFiles(paths)
    assert files.dtype == np.uint8 and files.shape == (3, 6, 7, 3)
    np.testing.assert_array_equal(files[0], in_memory[0])
    # The second is resized as load_arrays resizes it, then rounded to the files' uint8.
    np.testing.assert_array_equal(files[2], np.clip(np.rint(in_memory[2]), 0, 255))
    resized = ImageFiles(paths, image_size=(4, 3))
    assert resized.dtype == np.float32 and resized.shape == (3, 4, 3, 3)
    np.testing.assert_array_equal(resized[:], load_arrays(str(tmp_path), image_size=(4, 3))[0])
    gray = ImageFiles(paths, color_mode="grayscale")
    assert gray.shape == (3, 6, 7, 1)
    np.testing.assert_array_equal(gray[0][..., 0], np.asarray(Image.open(paths[0]).convert("L")))
    assert repr(gray) == "ImageFiles(3 files, image shape (6, 7, 1), dtype uint8)"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"`paths` must be a non-empty list of image files; "
                                         r"received paths=\[\]."):
        ImageFiles([])
    with pytest.raises(ValueError, match=r"`paths` must be a non-empty list of image files; "
                                         r"received paths='a.png'."):
        ImageFiles("a.png")
    paths = write_folder(tmp_path, [(4, 4)])
    with pytest.raises(ValueError, match=r"`color_mode` must be one of \['grayscale', 'rgb', "
                                         r"'rgba'\] or None; received color_mode='RGB'."):
        ImageFiles(paths, color_mode="RGB")
    with pytest.raises(ValueError, match="`image_size` must be a positive int"):
        ImageFiles(paths, image_size=0)
    with pytest.raises(TypeError, match="`lazy` must be a bool; received lazy=1."):
        load_arrays(str(tmp_path), lazy=1)
    with pytest.raises(TypeError, match=r"^`strict_images` must be a bool; received "
                                        r"strict_images='yes'.$"):
        ImageFiles(paths, strict_images="yes")


def test_image_batches_stream_files_as_they_serve_arrays(tmp_path):
    paths = write_folder(tmp_path, [(5, 5)] * 10, mode="L")
    files = ImageFiles(paths)
    streamed = ImageBatches(files, batch_size=4, seed=1, workers=2)
    served = ImageBatches(files[:], batch_size=4, seed=1)
    assert streamed.images is files and len(streamed) == len(served) == 2
    for _ in range(2):  # two epochs
        for index in range(len(served)):
            np.testing.assert_array_equal(streamed[index], served[index])
        streamed.on_epoch_end()
        served.on_epoch_end()
    # `fit` reads it through Keras's threaded enqueuer.
    model = keras.Sequential([keras.Input((5, 5, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(1)])
    assert model.predict(streamed, verbose=0).shape == (8, 1)


def test_streams_without_tensorflow(tmp_path):
    write_folder(tmp_path / "train", [(6, 7)] * 4)
    out = run_without_tensorflow(f"""
        from swav_keras.data import ImageBatches, load_arrays
        files, labels, info = load_arrays({str(tmp_path)!r}, lazy=True, image_size=5)
        batches = ImageBatches(files, batch_size=2, seed=0, workers=2)
        print(type(files).__name__, batches[0].shape, batches[0].dtype, labels.tolist(),
              info.image_shape, "tensorflow" in sys.modules)
    """, other_backend(keras.backend.backend()))
    assert "ImageFiles (2, 5, 5, 3) float32 [0, 0, 1, 1] (5, 5, 3) False" in out


@pytest.mark.parametrize("size", [(4, 3), (9, 11), (5, 7), (13, 2)])
def test_resize_equals_tf_image_resize(size):
    import tensorflow as tf

    from swav_keras.data.image_folder import resize

    pixels = np.random.default_rng(0).uniform(0, 255, (2, 5, 7, 3)).astype("float32")
    expected = tf.image.resize(pixels, size, method="bilinear").numpy()  # half-pixel centres
    np.testing.assert_allclose(resize(pixels, size), expected, atol=2e-4)
    np.testing.assert_allclose(resize(pixels[0], size), expected[0], atol=2e-4)
    assert resize(pixels, size).dtype == np.float32
