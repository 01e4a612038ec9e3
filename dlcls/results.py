"""Result handles: what apply_dl_classifier and train_dl_classifier_batch return."""

import numpy as np

from . import errors
from .core.predict import ranking

RESULT_NAMES = ("predicted_classes", "predicted_class_indices", "confidences")


class Handle:
    """Something HALCON frees with a clear_* operator; a cleared handle refuses every use."""

    _cleared = False

    def clear(self) -> None:
        self._cleared = True

    def _alive(self):
        if self._cleared:
            raise errors.ClearedHandleError(f"this {type(self).__name__} was cleared and cannot be used any more")
        return self


class DLClassifierResult(Handle):
    """Per-image confidences of one apply call, with the classes they refer to."""

    def __init__(self, confidences: np.ndarray, classes: list[str]):
        self.confidences = confidences  # N x classes, rows sum to 1
        self.classes = list(classes)
        self._order = ranking(confidences)

    def __len__(self) -> int:
        return len(self._alive().confidences)

    def get(self, index, name: str):
        """HALCON's get_dl_classifier_result: index 'all' gives the top-1 value of every image;
        an integer index gives all classes of that image by descending confidence."""
        self._alive()
        if name not in RESULT_NAMES:
            raise errors.UnknownParamError(f"unknown result {name!r}; results are {list(RESULT_NAMES)}")
        if isinstance(index, (list, tuple)) and len(index) == 1:
            index = index[0]
        if isinstance(index, str) and index == "all":
            rows, order = np.arange(len(self.confidences)), self._order[:, 0]
            return self._values(name, rows, order)
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool) and 0 <= index < len(self.confidences):
            return self._values(name, np.full(len(self.classes), index), self._order[index])
        raise errors.ResultNotAvailableError(
            f"no result for index {index!r}: use 'all' or an image index 0..{len(self.confidences) - 1}")

    def _values(self, name: str, rows: np.ndarray, columns: np.ndarray) -> list:
        if name == "confidences":
            return self.confidences[rows, columns].astype(float).tolist()
        if name == "predicted_class_indices":
            return columns.astype(int).tolist()
        return [self.classes[c] for c in columns]

    def clear(self) -> None:
        super().clear()
        self.confidences = self._order = None


class DLClassifierTrainResult(Handle):
    """The outcome of one training step."""

    def __init__(self, loss: float):
        self.loss = loss

    def get(self, name: str) -> float:
        self._alive()
        if name != "loss":
            raise errors.UnknownParamError(f"unknown training result {name!r}; the training result is 'loss'")
        return self.loss
