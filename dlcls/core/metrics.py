"""Classification metrics from ground-truth class indices and N x K confidences.

Shared by evaluate_dl_classifier, gen_confusion_matrix and the offline evaluation job, so every
path reports the same numbers. Matrices use HALCON's layout: rows = predicted class, columns =
ground truth. The top-1 prediction is `ranking(...)[:, 0]`, the same tie-breaking as
get_dl_classifier_result.
"""

import numpy as np

from .predict import ranking


def top1(confidences: np.ndarray) -> np.ndarray:
    """The predicted class index of every image (N)."""
    return ranking(np.asarray(confidences))[:, 0]


def confusion_matrix(gt, pred, num_classes: int) -> np.ndarray:
    """K x K int64 counts; cell [p, g] = images of ground truth g predicted as p."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(pred, dtype=np.intp), np.asarray(gt, dtype=np.intp)), 1)
    return matrix


def relative_confusion_matrix(matrix: np.ndarray) -> np.ndarray:
    """Each column divided by its ground-truth count (columns sum to 1); an empty column stays 0."""
    totals = matrix.sum(axis=0, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)


def topk_error(gt, confidences: np.ndarray, k: int, cls: int | None = None) -> float:
    """1 - the fraction of images whose ground truth is among their first k predictions; with
    `cls`, only over the images of that ground-truth class (NaN when there are none)."""
    gt = np.asarray(gt)
    hits = (ranking(np.asarray(confidences))[:, :k] == gt[:, None]).any(axis=1)
    if cls is not None:
        hits = hits[gt == cls]
    return float(1.0 - hits.mean()) if hits.size else float("nan")


def class_precision_recall(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class: precision = TP / #predicted as the class, recall = TP / #ground truth of the
    class; 0 where the denominator is 0 (HALCON's convention for precision)."""
    tp = np.diag(matrix).astype(float)
    return _ratio(tp, matrix.sum(axis=1)), _ratio(tp, matrix.sum(axis=0))


def f_score(precision, recall):
    """2PR / (P + R), 0 where P + R = 0; scalars or arrays."""
    p, r = np.asarray(precision, dtype=float), np.asarray(recall, dtype=float)
    return _ratio(2 * p * r, p + r)


def precision_recall_f(matrix: np.ndarray, cls: int | None = None) -> tuple[float, float, float]:
    """(precision, recall, F) of one class, or with cls=None the unweighted means of precision and
    recall over all classes and the F score of those two means (HALCON's 'global')."""
    precision, recall = class_precision_recall(matrix)
    p, r = (precision.mean(), recall.mean()) if cls is None else (precision[cls], recall[cls])
    return float(p), float(r), float(f_score(p, r))


def _ratio(numerator, denominator) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    return np.divide(numerator, denominator, out=np.zeros(np.broadcast(numerator, denominator).shape),
                     where=denominator != 0)
