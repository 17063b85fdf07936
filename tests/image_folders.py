"""Small folders of random PNG images, laid out as `image_dataset_from_directory` reads them."""

import numpy as np
from PIL import Image


def write_folder(root, sizes, mode="RGB"):
    """Writes PNGs of `sizes` [(h, w), ...] into class folders `a` and `b` (labels 0, 1).

    Image i goes to `b` when i is odd, else `a`, named `{9 - i}.png`, so that written order and
    sorted order differ. Returns the paths in Keras's order (class by class, sorted names).
    """
    rng = np.random.default_rng(2)
    for i, (h, w) in enumerate(sizes):
        folder = root / ("b" if i % 2 else "a")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w)).astype("uint8")
        Image.fromarray(pixels, mode).save(folder / f"{9 - i}.png")
    return sorted(str(path) for path in root.glob("*/*.png"))


def add_bad_files(root, path):
    """Spoils a folder as a large download can be: truncates the PNG at `path` (its header stays
    good: only decoding finds it), and writes an empty `a/empty.png` and a text file
    `b/notes.png`. Returns the three paths, in that order."""
    data = open(path, "rb").read()
    with open(path, "wb") as file:
        file.write(data[: len(data) // 2])
    empty, text = root / "a" / "empty.png", root / "b" / "notes.png"
    empty.write_bytes(b"")
    text.write_text("not an image\n")
    return [str(path), str(empty), str(text)]
