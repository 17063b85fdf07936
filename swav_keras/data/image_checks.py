"""Bad files in image folders (empty, not an image, undecodable): named, counted, skipped.

One bad file deep in a large folder must not make a run impossible to finish, nor stop it
without saying which file. Both readers of folders (tf.data in `folder_dataset`, Pillow in
`ImageFiles` and `load_arrays`) handle them in two stages:

1. Before anything is read, `checked_files` opens every listed file and reads its first
   bytes (threads, for network disks): a file that is empty or whose header is no PNG, JPEG,
   GIF, BMP or WebP signature is left out, with its label, before any batch exists.
2. A file with a good header that still cannot be decoded (a truncated PNG) is found only
   when read: another good image takes its place (Pillow: the next file's, `read_or_next`;
   tf.data: the stream drops it and is topped up from its start), so the number of images,
   and with it every batch and step count, stays what the listing gave.

Each bad file is `report`ed: with `strict=False` named once per process in a
`BadImageWarning` and recorded (`bad_images` gives them, the recipes count them); with
`strict=True` the first one raises a `BadImageError` naming it, so a rerun says which file
to remove. No TensorFlow here.
"""

import concurrent.futures
import contextlib
import os
import threading
import warnings

from swav_keras.validation import check_bool

# File signatures of the formats Keras and Pillow decode ("RIFF....WEBP" checked apart).
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")

_lock = threading.Lock()
_reported = {}  # every bad file met by this process: path -> reason
_raised = []  # the BadImageErrors raised, for `named_errors`


class BadImageWarning(UserWarning):
    """A bad image file was skipped; the message names it."""


class BadImageError(ValueError):
    """An image file cannot be read; `path` names it and `reason` says why."""

    def __init__(self, path, reason):
        super().__init__(f"Cannot read image {path}: {reason}.")
        self.path, self.reason = path, reason


def check_strict_images(strict_images):
    """`strict_images`, checked to be a bool."""
    return check_bool("strict_images", strict_images)


def header_problem(path):
    """Why the file at `path` is no image, from its first bytes; `None` when it may be one.

    Args:
        path: a file path.

    Returns:
        `None`, or a reason such as `"empty file (0 bytes)"`.

    Example:

    >>> import tempfile
    >>> from swav_keras.data.image_checks import header_problem
    >>> with tempfile.NamedTemporaryFile(suffix=".png") as file:
    ...     header_problem(file.name)
    'empty file (0 bytes)'
    """
    try:
        with open(path, "rb") as file:
            head = file.read(12)
    except OSError as error:
        return f"cannot be opened ({error.strerror or error})"
    if not head:
        return "empty file (0 bytes)"
    if head.startswith(SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return None
    return f"not a PNG, JPEG, GIF, BMP or WebP file (it starts with {head[:8]!r})"


def report(path, reason, strict=False):
    """Names a bad image file: a `BadImageError` when `strict`, else a warning (once per file
    per process), and records it for `bad_images`.

    Args:
        path: the file.
        reason: why it cannot be read.
        strict: raise instead of skipping. Defaults to `False`.
    """
    if strict:
        error = BadImageError(path, f"{reason} (strict_images: remove or replace the file, "
                                    "or run without strict_images to skip such files)")
        _raised.append(error)
        raise error
    with _lock:
        new = path not in _reported
        _reported[path] = reason
    if new:
        warnings.warn(f"Skipping image {path}: {reason}.", BadImageWarning, stacklevel=2)


@contextlib.contextmanager
def named_errors():
    """Raises, in place of an error of tf.data that wraps a `BadImageError` (a strict `report`
    inside a `py_function`), that `BadImageError` itself."""
    try:
        yield
    except BadImageError:
        raise
    except Exception as error:
        for raised in reversed(_raised):
            if str(raised) in str(error):
                raise raised from error
        raise


def bad_images(folder=None):
    """`{path: reason}` of the bad image files reported in this process (under `folder`)."""
    prefix = None if folder is None else os.path.join(os.path.abspath(folder), "")
    with _lock:
        return {path: reason for path, reason in _reported.items()
                if prefix is None or os.path.abspath(path).startswith(prefix)}


def checked_files(paths, labels, strict=False):
    """`paths` and `labels` without the files whose header shows they are no image.

    Args:
        paths: image file paths.
        labels: a NumPy array (or anything indexed by a boolean mask) of their labels.
        strict: raise a `BadImageError` on the first bad file, before anything is read.
            Defaults to `False`: skip it, with a warning.

    Returns:
        `(paths, labels)` of the files kept, in their order.
    """
    import numpy as np

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        problems = list(pool.map(header_problem, paths))
    keep = np.array([problem is None for problem in problems], bool)
    for path, problem in zip(paths, problems, strict=True):
        if problem is not None:
            report(path, problem, strict)
    return [path for path, ok in zip(paths, keep, strict=True) if ok], labels[keep]


def read_or_next(read, paths, row, strict=False):
    """`read(paths[row])`, or when it raises a `BadImageError` (reported), the next readable
    file's pixels, wrapping round: a bad file keeps its place, filled by a good image."""
    for step in range(len(paths)):
        try:
            return read(paths[(row + step) % len(paths)])
        except BadImageError as error:
            report(error.path, error.reason, strict)
    raise BadImageError(paths[row], "no file of its list can be read")
