"""apply_dl_classifier_batchwise and evaluate_dl_classifier: classify a data set chunk by chunk
and measure the result (top-K error, precision, recall, F-score, confusion matrices)."""

import functools
import os
import re
from collections.abc import Callable, Iterator

import numpy as np

from .. import errors
from ..core import images as img
from ..core import metrics
from ..operators import apply_dl_classifier, get_dl_classifier_param
from ..results import DLClassifierResult
from .genparams import as_list
from .preprocess import preprocess_dl_classifier_images

_REQUIREMENTS = "Images need to fulfill the network requirements, please provide preprocessed images"
_IMAGE_ERRORS = (errors.ImageWidthError, errors.ImageHeightError, errors.ChannelError, errors.ImageTypeError,
                 errors.UndefinedGrayValuesError)
_TOPK = re.compile(r"top([0-9]+)_error")


# -- apply_dl_classifier_batchwise ----------------------------------------------------------

def apply_dl_classifier_batchwise(images_or_files, handle, load: Callable | None = None):
    """Classify preprocessed images, or image files, in chunks of batch_size. Files are read and
    preprocessed chunk by chunk with preprocess_dl_classifier_images, or with `load` (a list of
    paths -> N x H x W x C float array) when given. Returns (one result handle per chunk, per image
    the classes by descending confidence, per image the confidences in that order)."""
    size = get_dl_classifier_param(handle, "batch_size")
    listed = images_or_files if isinstance(images_or_files, (list, tuple)) else [images_or_files]
    if load is None and any(_is_path(item) for item in listed):
        load = functools.partial(_preprocess, handle=handle)
    results = [_apply(start, batch, handle) for start, batch in _batches(images_or_files, size, load)]
    ranked = [(r.get(i, "predicted_classes"), r.get(i, "confidences")) for r in results for i in range(len(r))]
    return results, [classes for classes, _ in ranked], [confidences for _, confidences in ranked]


def _batches(images_or_files, size: int, load: Callable | None) -> Iterator[tuple[int, list]]:
    """(index of the chunk's first image, its images), chunk by chunk."""
    items = _items(images_or_files, load)
    if not items:
        raise errors.WrongParamValueError("no images given: pass at least one preprocessed image or file")
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        yield start, chunk if load is None else _loaded(load, chunk)


def _loaded(load: Callable, files: list) -> list:
    images = img.image_list(load(files))
    if len(images) != len(files):
        raise errors.WrongParamValueError(f"load returned {len(images)} images for {len(files)} files ({files[0]!r}, "
                                          "...): it must return one preprocessed image per file")
    return images


def _items(images_or_files, load: Callable | None) -> list:
    if load is not None:
        return [images_or_files] if _is_path(images_or_files) else list(images_or_files)
    return img.image_list(images_or_files)


def _preprocess(files: list, handle):
    return preprocess_dl_classifier_images(files, handle)


def _is_path(item) -> bool:
    return isinstance(item, (str, os.PathLike))


def _apply(start: int, batch: list, handle) -> DLClassifierResult:
    try:
        return apply_dl_classifier(batch, handle)
    except _IMAGE_ERRORS as e:
        # the detail counts images from the chunk's start
        raise type(e)(f"{_REQUIREMENTS} (in the chunk from image {start} on: {e.message})") from e


# -- evaluate_dl_classifier -----------------------------------------------------------------

def evaluate_dl_classifier(ground_truth_labels, handle, result_handles, evaluation_measure_type,
                           classes_to_evaluate):
    """HALCON's evaluate_dl_classifier. Measures: 'topK_error' (any K >= 1), 'precision', 'recall',
    'f_score', 'absolute_confusion_matrix', 'relative_confusion_matrix'; each paired with 'global'
    or a class name (a single measure or class is used for every entry of the other list). One
    value for one pair, else a list. Classes are looked up by name, so the order of 'classes'
    does not matter (HALCON's per-class values are only right for sorted classes)."""
    classes = get_dl_classifier_param(handle, "classes")
    confidences = _confidences(result_handles, classes)
    gt = np.asarray(handle.label_indices(ground_truth_labels, len(confidences)))
    _require_all_classes(gt, classes)
    pairs = _pairs(as_list(evaluation_measure_type), as_list(classes_to_evaluate))
    values = [_measure(measure, _class_index(name, classes), gt, confidences) for measure, name in pairs]
    return values[0] if len(values) == 1 else values


def _confidences(result_handles, classes: list[str]) -> np.ndarray:
    """The results' confidences in image order; chunked results (image i in handle i // batch_size)
    concatenate to exactly that."""
    results = as_list(result_handles)
    if not results:
        raise errors.WrongParamValueError("no result handles given: pass those of apply_dl_classifier_batchwise")
    for r in results:
        if not isinstance(r, DLClassifierResult):
            raise errors.WrongHandleTypeError(f"expected DLClassifierResult handles, got {type(r).__name__}")
        if r._alive().classes != classes:
            raise errors.WrongParamValueError(
                f"a result holds the classes {r.classes}, the classifier {classes}: evaluate with the classifier "
                "that produced the results")
    return np.concatenate([r.confidences for r in results])


def _require_all_classes(gt: np.ndarray, classes: list[str]) -> None:
    missing = [name for i, name in enumerate(classes) if not (gt == i).any()]
    if missing:
        raise errors.WrongParamValueError(
            f"Not all classes are represented in the ground truth labels: {missing} do not occur; evaluate on "
            "a set that holds images of every class")


def _pairs(measures: list, names: list) -> list[tuple]:
    if not measures or not names:
        raise errors.WrongParamValueError("give at least one evaluation measure and one class ('global' or a name)")
    if len(measures) > 1 and len(names) > 1 and len(measures) != len(names):
        raise errors.WrongParamValueError(
            f"{len(measures)} measures and {len(names)} classes to evaluate: give lists of the same length, "
            "or a single measure or class to pair with every entry of the other")
    count = max(len(measures), len(names))
    return list(zip(measures * count if len(measures) == 1 else measures, names * count if len(names) == 1 else names))


def _class_index(name, classes: list[str]) -> int | None:
    if name == "global":
        return None
    if isinstance(name, str) and name in classes:
        return classes.index(name)
    raise errors.WrongParamValueError(f"cannot evaluate class {name!r}: use 'global' or one of {classes}")


def _whole_matrix(transform: Callable) -> Callable:
    def measure(matrix, cls):
        if cls is not None:
            raise errors.WrongParamValueError("a confusion matrix covers all classes: evaluate it with 'global'")
        return transform(matrix)
    return measure


# Measures computed from the top-1 confusion matrix: name -> (matrix, class index or None) -> value.
_MATRIX_MEASURES = {
    "precision": lambda matrix, cls: metrics.precision_recall_f(matrix, cls)[0],
    "recall": lambda matrix, cls: metrics.precision_recall_f(matrix, cls)[1],
    "f_score": lambda matrix, cls: metrics.precision_recall_f(matrix, cls)[2],
    "absolute_confusion_matrix": _whole_matrix(np.copy),
    "relative_confusion_matrix": _whole_matrix(metrics.relative_confusion_matrix),
}


def _measure(measure, cls: int | None, gt: np.ndarray, confidences: np.ndarray):
    topk = _TOPK.fullmatch(measure) if isinstance(measure, str) else None
    if topk:
        return metrics.topk_error(gt, confidences, _k(topk), cls)
    if measure not in _MATRIX_MEASURES:
        raise errors.WrongParamValueError(
            f"unknown evaluation measure {measure!r}: use 'top1_error' (any 'topK_error'), "
            f"{', '.join(repr(m) for m in _MATRIX_MEASURES)}")
    matrix = metrics.confusion_matrix(gt, metrics.top1(confidences), confidences.shape[1])
    return _MATRIX_MEASURES[measure](matrix, cls)


def _k(match: re.Match) -> int:
    k = int(match.group(1))
    if k < 1:
        raise errors.WrongParamValueError(f"{match.group(0)!r}: K must be at least 1, e.g. 'top1_error'")
    return k
