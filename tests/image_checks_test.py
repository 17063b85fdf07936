"""Bad image files: found by their first bytes or when decoded, named once, skipped or refused."""

import re
import warnings

import numpy as np
import pytest
from image_folders import add_bad_files, write_folder
from PIL import Image

from swav_keras.data import ImageBatches, ImageFiles, image_checks
from swav_keras.data.image_checks import BadImageError, BadImageWarning

HEADERS = {  # the first bytes of each format, as written by Pillow
    "png": "PNG", "jpg": "JPEG", "gif": "GIF", "bmp": "BMP", "webp": "WEBP"}


@pytest.mark.parametrize("extension", sorted(HEADERS))
def test_every_format_keras_or_pillow_reads_passes_the_header_check(tmp_path, extension):
    path = tmp_path / f"x.{extension}"
    Image.fromarray(np.zeros((4, 4, 3), "uint8")).save(path, HEADERS[extension])
    assert image_checks.header_problem(str(path)) is None
    wrong_name = tmp_path / "x.png"  # a JPEG named .png still decodes: not a bad file
    wrong_name.write_bytes(path.read_bytes())
    assert image_checks.header_problem(str(wrong_name)) is None


def test_empty_text_and_missing_files_are_named_by_their_header(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("<html>404 Not Found</html>")
    assert image_checks.header_problem(str(tmp_path / "empty.png")) == "empty file (0 bytes)"
    assert image_checks.header_problem(str(tmp_path / "text.png")) == (
        "not a PNG, JPEG, GIF, BMP or WebP file (it starts with b'<html>40')")
    assert image_checks.header_problem(str(tmp_path / "gone.png")).startswith(
        "cannot be opened (No such file")


def test_checked_files_skip_bad_ones_with_their_labels_or_refuse_the_first(tmp_path):
    paths = write_folder(tmp_path, [(4, 4)] * 4)
    truncated, empty, text = add_bad_files(tmp_path, paths[1])
    listed = [paths[0], empty, paths[1], paths[2], text, paths[3]]
    labels = np.arange(6)
    with pytest.warns(BadImageWarning) as caught:
        kept, kept_labels = image_checks.checked_files(listed, labels)
    # The truncated file's header is good: only decoding finds it.
    assert kept == [paths[0], truncated, paths[2], paths[3]]
    assert kept_labels.tolist() == [0, 2, 3, 5]
    assert [str(w.message) for w in caught] == [
        f"Skipping image {empty}: empty file (0 bytes).",
        f"Skipping image {text}: not a PNG, JPEG, GIF, BMP or WebP file (it starts with "
        "b'not an i').",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named once per file and process
        image_checks.checked_files(listed, labels)
    assert set(image_checks.bad_images(str(tmp_path))) == {empty, text}
    assert image_checks.bad_images(str(tmp_path / "a")) == {
        empty: "empty file (0 bytes)"}
    with pytest.raises(BadImageError, match=f"^Cannot read image {re.escape(empty)}: empty "
                                            r"file \(0 bytes\) \(strict_images: remove or "
                                            "replace the file"):
        image_checks.checked_files(listed, labels, strict=True)


def test_a_file_only_decoding_finds_is_replaced_by_the_next_good_one(tmp_path):
    paths = write_folder(tmp_path, [(4, 4)] * 4)
    truncated = add_bad_files(tmp_path, paths[3])[0]  # the last: wraps round to the first
    expected = np.stack([np.asarray(Image.open(path)) for path in paths[:3]])
    files = ImageFiles(paths)
    with pytest.warns(BadImageWarning, match=f"Skipping image {re.escape(truncated)}: "
                                             "OSError: image file is truncated"):
        np.testing.assert_array_equal(files[:], expected[[0, 1, 2, 0]])
    batches = ImageBatches(files, batch_size=2, seed=0)  # full batches all the same
    assert [batches[i].shape for i in range(len(batches))] == [(2, 4, 4, 3)] * 2
    with pytest.raises(BadImageError, match=f"Cannot read image {re.escape(truncated)}: "):
        ImageBatches(ImageFiles(paths, strict_images=True), batch_size=4, shuffle=False)[0]
    for path in paths:
        with open(path, "wb") as file:
            file.write(b"\x89PNG\r\n\x1a\n")  # headers only
    with pytest.warns(BadImageWarning), pytest.raises(BadImageError,
                                                      match="no file of its list can be read"):
        ImageFiles(paths, image_size=4, color_mode="rgb")[0]


def test_strict_images_must_be_a_bool():
    with pytest.raises(TypeError, match=r"^`strict_images` must be a bool; received "
                                        r"strict_images=1.$"):
        image_checks.check_strict_images(1)
