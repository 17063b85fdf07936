"""Golden tests of `random_resized_crops` and `crop_boxes` (keras.ops) on the active backend."""


import keras
import numpy as np
import numpy_reference as ref
import pytest

from swav_keras.augmentation import crop_boxes, random_resized_crops


def images(batch=3, height=20, width=20, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, height, width, channels)).astype("uint8")


def test_boxes_follow_random_resized_crop_distribution():
    boxes = keras.ops.convert_to_numpy(
        crop_boxes(20_000, 1000, 1000, (0.05, 0.3), keras.random.SeedGenerator(1))
    )
    np.testing.assert_array_equal(boxes, np.round(boxes))  # whole pixels
    ref.check_crop_boxes(boxes)


def test_box_fallback_is_central_crop_with_clamped_aspect():
    # No draw of area >= 90% of a 100x10 image fits with aspect >= 3/4: torchvision falls back.
    generator = keras.random.SeedGenerator(0)
    boxes = keras.ops.convert_to_numpy(crop_boxes(50, 100, 10, (0.9, 1.0), generator))
    np.testing.assert_array_equal(boxes, np.tile([[43, 0, 13, 10]], (50, 1)))
    boxes = keras.ops.convert_to_numpy(crop_boxes(50, 10, 100, (0.9, 1.0), generator))
    np.testing.assert_array_equal(boxes, np.tile([[0, 43, 10, 13]], (50, 1)))


def test_image_size_may_be_a_tensor():
    # tf.data crops images of any size one by one: their height and width are tensors there.
    height, width = keras.ops.convert_to_tensor(100), keras.ops.convert_to_tensor(10)
    for scale in [(0.9, 1.0), (0.05, 0.3)]:
        given = crop_boxes(50, height, width, scale, keras.random.SeedGenerator(2))
        static = crop_boxes(50, 100, 10, scale, keras.random.SeedGenerator(2))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(given),
                                      keras.ops.convert_to_numpy(static))


@pytest.mark.parametrize("size", [7, 16, 31])  # down-, same- and up-sampling of 16-20 px boxes
@pytest.mark.parametrize("flip", [False, True])
def test_crops_match_numpy_torchvision_reference(size, flip):
    x = images(batch=3, height=20, width=17)
    num_crops, scale, seed = 4, (0.3, 1.0), 5
    crops = keras.ops.convert_to_numpy(random_resized_crops(
        x, num_crops, size, scale, keras.random.SeedGenerator(seed), flip=flip))
    assert crops.shape == (num_crops, 3, size, size, 2) and crops.dtype == np.float32
    # The same generator state draws the same boxes, then the flips, in that order.
    replay = keras.random.SeedGenerator(seed)
    boxes = keras.ops.convert_to_numpy(crop_boxes(num_crops * 3, 20, 17, scale, replay))
    flips = (keras.ops.convert_to_numpy(keras.random.uniform((num_crops * 3,), seed=replay))
             < 0.5) if flip else np.zeros(num_crops * 3, bool)
    assert flip is False or 0 < flips.sum() < len(flips)
    for v in range(num_crops):
        for b in range(3):
            i = v * 3 + b
            expected = ref.resized_crop(x[b], boxes[i], size, flip=flips[i])
            np.testing.assert_allclose(crops[v, b], expected, atol=2e-3)


def test_full_image_box_returns_the_image():
    x = images(batch=2, height=12, width=12, channels=3)
    crops = keras.ops.convert_to_numpy(random_resized_crops(
        x, 64, 12, (1.0, 1.0), keras.random.SeedGenerator(3), flip=True))
    flipped = same = 0
    for v in range(64):
        for b in range(2):
            if np.allclose(crops[v, b], x[b], atol=1e-3):
                same += 1
            else:
                np.testing.assert_allclose(crops[v, b], x[b, :, ::-1], atol=1e-3)
                flipped += 1
    assert 32 < flipped < 96 and same + flipped == 128


def test_each_crop_of_each_image_is_drawn_independently():
    x = np.repeat(images(batch=1, height=24, width=24), 8, axis=0)
    crops = keras.ops.convert_to_numpy(random_resized_crops(
        x, 2, 10, (0.1, 0.5), keras.random.SeedGenerator(0)))
    flat = crops.reshape(16, -1)
    distances = np.abs(flat[:, None] - flat[None]).sum(-1)
    assert (distances[~np.eye(16, dtype=bool)] > 0).all()


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="`seed_generator` must be a keras.random.SeedGenerator; "
                                        "received seed_generator of type int."):
        random_resized_crops(images(), 2, 8, (0.5, 1.0), 0)
    with pytest.raises(ValueError, match=r"`images` must be a batch \[batch, height, width, "
                                         r"channels\] with a known height and width; received "
                                         r"images.shape=\(20, 20, 2\)."):
        random_resized_crops(images()[0], 2, 8, (0.5, 1.0), keras.random.SeedGenerator(0))
