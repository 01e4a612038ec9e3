"""The data-set procedures: read_dl_classifier_data_set, split_dl_classifier_data_set,
select_percentage_dl_classifier_data.

Randomness comes from random.Random(seed): the same seed gives the same split. seed=None draws
from the global state, which dlcls.set_seed sets (HALCON's 'seed_rand').
"""

import math
import numbers
import os
import re
from collections.abc import Callable, Iterator, Sequence

import fsspec

from .. import errors
from ..core import storage
from ..core.seeds import python_rng

# HALCON's default image extensions, in its order, less those Pillow cannot read (hobj, ima, xwd).
EXTENSIONS = ("bmp", "jpg", "png", "tiff", "tif", "gif", "jpeg", "pcx", "pgm", "ppm", "pbm", "pnm")


def _base_name(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


LABEL_SOURCES: dict[str, Callable[[str], str]] = {
    "last_folder": lambda path: path.rsplit("/", 2)[-2],
    "file_name": _base_name,
    "file_name_remove_index": lambda path: re.sub(r"[0-9_]+$", "", _base_name(path)),
}


def read_dl_classifier_data_set(image_directory, label_source):
    """(image_files, ground_truth_labels, label_indices, unique_classes) of every image below
    `image_directory` (a local path, file:// or s3:// URL; on object stores one listing request,
    locally links are followed as in HALCON).

    Files are grouped by extension in HALCON's order (EXTENSIONS, case-insensitive) and sorted
    by path within a group (HALCON keeps the system's order); a path is the directory as given +
    '/' + the relative path. `label_source`: 'last_folder', 'file_name', 'file_name_remove_index'
    (trailing digits and underscores removed), or [] / None for no labels. A file that would get
    an empty label (e.g. '123.png' with 'file_name_remove_index') is an error.
    """
    label_of = _label_source(label_source)
    if not isinstance(image_directory, (str, os.PathLike)):
        raise errors.WrongParamValueError(f"ImageDirectory must be a path or URL string, got {image_directory!r}")
    found = _list_images(image_directory)
    image_files = [shown for _, shown in found]
    if label_of is None:
        return image_files, [], [], []
    labels = [_label(label_of, path, label_source) for path, _ in found]
    unique_classes = sorted(set(labels))
    position = {label: i for i, label in enumerate(unique_classes)}
    return image_files, labels, [position[label] for label in labels], unique_classes


def split_dl_classifier_data_set(image_files, labels, training_percent, validation_percent, seed=None):
    """(training_images, training_labels, validation_images, validation_labels, test_images,
    test_labels): per class in sorted order, shuffled, the first floor(n*tp/100) for training, up
    to floor(n*(tp+vp)/100) for validation, the rest for testing; each subset shuffled as a whole."""
    pairs = _pairs(image_files, labels)
    tp = _percent(training_percent, "TrainingPercent")
    vp = _percent(validation_percent, "ValidationPercent")
    if tp + vp > 100:
        raise errors.WrongParamValueError(f"TrainingPercent + ValidationPercent = {tp + vp} exceeds 100; lower them")
    rng = python_rng(seed)
    subsets: tuple[list, list, list] = ([], [], [])
    for members in _by_class(pairs):
        rng.shuffle(members)
        cut_train, cut_val = math.floor(len(members) * tp / 100), math.floor(len(members) * (tp + vp) / 100)
        for subset, part in zip(subsets, (members[:cut_train], members[cut_train:cut_val], members[cut_val:])):
            subset.extend(part)
    outputs = []
    for subset in subsets:
        rng.shuffle(subset)
        outputs += [[f for f, _ in subset], [label for _, label in subset]]
    return tuple(outputs)


def select_percentage_dl_classifier_data(image_files, labels, select_percentage, seed=None):
    """(image_files_out, labels_out): per class in sorted order, max(1, floor(n*p/100)) randomly
    chosen items, grouped by class; p=100 returns the input unchanged."""
    pairs = _pairs(image_files, labels)
    p = _percent(select_percentage, "SelectPercentage")
    if p > 100:
        raise errors.WrongParamValueError(f"SelectPercentage must lie in [0, 100], got {p}")
    if p == 100:
        return [f for f, _ in pairs], [label for _, label in pairs]
    rng = python_rng(seed)
    kept = []
    for members in _by_class(pairs):
        rng.shuffle(members)
        kept += members[: max(1, math.floor(len(members) * p / 100))]
    return [f for f, _ in kept], [label for _, label in kept]


def _label_source(label_source) -> Callable[[str], str] | None:
    if label_source is None or (isinstance(label_source, (list, tuple)) and not label_source):
        return None
    if isinstance(label_source, str) and label_source in LABEL_SOURCES:
        return LABEL_SOURCES[label_source]
    raise errors.WrongParamValueError(f"LabelSource not supported: {label_source!r}; use one of "
                                      f"{sorted(LABEL_SOURCES)} or [] for no labels")


def _label(label_of: Callable[[str], str], path: str, label_source: str) -> str:
    label = label_of(path)
    if not label:
        raise errors.WrongParamValueError(f"{label_source!r} gives {path!r} an empty label; rename the file or "
                                          "choose another LabelSource")
    return label


def _list_images(image_directory) -> list[tuple[str, str]]:
    """(path in the file system, path as returned) of every image, in HALCON's order. The
    returned path is the directory as given + '/' + the relative path, so URLs keep their scheme."""
    fs, root = storage.filesystem(image_directory)
    prefix = root.rstrip("/") + "/"
    shown = os.fspath(image_directory).replace(os.sep, "/").rstrip("/") + "/"
    groups: dict[str, list[str]] = {ext: [] for ext in EXTENSIONS}
    for path in _find(fs, root):
        if path.startswith(prefix) and _extension(path) in groups:
            groups[_extension(path)].append(path)
    found = [(path, shown + path[len(prefix):]) for ext in EXTENSIONS for path in sorted(groups[ext])]
    if not found:
        raise errors.NoImagesFoundError(_nothing_found(fs, root, image_directory))
    return found


def _find(fs: fsspec.AbstractFileSystem, root: str) -> Iterator[str]:
    """Every file below `root`: on object stores in one listing request (not one per file or
    folder); locally with os.walk, which unlike fsspec follows links, as HALCON does."""
    if not storage.is_local(fs):
        yield from fs.find(root, withdirs=False)
        return
    seen = set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        if os.path.realpath(folder) in seen:  # a link back to a folder already listed: stop the cycle
            subfolders.clear()
            continue
        seen.add(os.path.realpath(folder))
        yield from (os.path.join(folder, name).replace(os.sep, "/") for name in names)


def _extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[1].lower() if "." in name else ""


def _nothing_found(fs: fsspec.AbstractFileSystem, root: str, image_directory) -> str:
    if not fs.exists(root):
        return f"the image directory {os.fspath(image_directory)!r} does not exist"
    return (f"no image found below {os.fspath(image_directory)!r}; looked for files ending in "
            f"{', '.join('.' + e for e in EXTENSIONS)} (any case)")


def _pairs(image_files, labels) -> list[tuple]:
    files, labels = list(image_files), list(labels)
    if not files:
        raise errors.WrongParamValueError("no image files given; read a data set first")
    if len(files) != len(labels):
        raise errors.WrongParamValueError(f"got {len(files)} image files but {len(labels)} labels; "
                                          "give one label per file")
    return list(zip(files, labels))


def _by_class(pairs: Sequence[tuple]) -> list[list[tuple]]:
    """The (file, label) pairs of each class, classes in sorted order, files in input order."""
    members: dict = {}
    for pair in pairs:
        members.setdefault(pair[1], []).append(pair)
    try:
        return [members[label] for label in sorted(members)]
    except TypeError:
        kinds = sorted({type(label).__name__ for label in members})
        raise errors.WrongParamValueError(f"labels must all be names or all be indices, got a mix of {kinds}") from None


def _percent(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise errors.WrongParamValueError(f"{name} must be a number >= 0, got {value!r}")
    return value
