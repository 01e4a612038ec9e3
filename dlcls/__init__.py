"""dlcls: HALCON's deep-learning classification workflow in Python, on PyTorch, scaled out on Ray."""

from . import errors
from .classifier import DLClassifier
from .core.pretrained import PretrainedWeightsWarning, set_pretrained_weights
from .core.runtime import set_seed
from .operators import (
    apply_dl_classifier,
    clear_dl_classifier,
    clear_dl_classifier_result,
    clear_dl_classifier_train_result,
    deserialize_dl_classifier,
    get_dl_classifier_param,
    get_dl_classifier_result,
    get_dl_classifier_train_result,
    read_dl_classifier,
    serialize_dl_classifier,
    set_dl_classifier_param,
    train_dl_classifier_batch,
    write_dl_classifier,
)
from .results import DLClassifierResult, DLClassifierTrainResult

__version__ = "0.1.0"

__all__ = [
    "DLClassifier", "DLClassifierResult", "DLClassifierTrainResult", "PretrainedWeightsWarning", "errors",
    "apply_dl_classifier", "clear_dl_classifier", "clear_dl_classifier_result", "clear_dl_classifier_train_result",
    "deserialize_dl_classifier", "get_dl_classifier_param", "get_dl_classifier_result",
    "get_dl_classifier_train_result", "read_dl_classifier", "serialize_dl_classifier", "set_dl_classifier_param",
    "set_pretrained_weights", "set_seed", "train_dl_classifier_batch", "write_dl_classifier",
]
