"""dlcls: HALCON's deep-learning classification workflow in Python, on PyTorch, scaled out on Ray.

The names below are imported on first use: a Ray task that only decodes images or splits a data
set imports dlcls without loading torch, which saves each fresh worker process a second or more.
"""

import importlib

from . import errors

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(["DLClassifier"], ".classifier"),
    **dict.fromkeys(["PretrainedWeightsWarning", "set_pretrained_weights"], ".core.pretrained"),
    **dict.fromkeys(["set_seed"], ".core.seeds"),
    **dict.fromkeys(["DLClassifierResult", "DLClassifierTrainResult"], ".results"),
    **dict.fromkeys([
        "apply_dl_classifier", "clear_dl_classifier", "clear_dl_classifier_result", "clear_dl_classifier_train_result",
        "deserialize_dl_classifier", "get_dl_classifier_param", "get_dl_classifier_result",
        "get_dl_classifier_train_result", "read_dl_classifier", "serialize_dl_classifier", "set_dl_classifier_param",
        "train_dl_classifier_batch", "write_dl_classifier"], ".operators"),
    # workflow procedures
    **dict.fromkeys([
        "TrainingHistory", "apply_dl_classifier_batchwise", "augment_images", "dev_display_dl_classifier_heatmap",
        "evaluate_dl_classifier", "gen_confusion_matrix", "gen_interactive_confusion_matrix",
        "get_dl_classifier_image_results", "plot_dl_classifier_training_progress", "preprocess_dl_classifier_images",
        "read_dl_classifier_data_set", "select_percentage_dl_classifier_data", "split_dl_classifier_data_set",
        "train_dl_classifier", "write_confusion_matrix_parquet"], ".procedures"),
}

__all__ = ["errors", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dlcls' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
