"""The HALCON workflow procedures (HDevelop "Deep Learning / Classification"), imported on first
use (see dlcls/__init__.py): reading a data set does not load torch."""

import importlib

# public name -> the module of this package that defines it
_EXPORTS = {
    "augment_images": ".augment",
    "gen_confusion_matrix": ".confusion", "gen_interactive_confusion_matrix": ".confusion",
    "write_confusion_matrix_parquet": ".confusion",
    "read_dl_classifier_data_set": ".dataset", "select_percentage_dl_classifier_data": ".dataset",
    "split_dl_classifier_data_set": ".dataset",
    "apply_dl_classifier_batchwise": ".evaluate", "evaluate_dl_classifier": ".evaluate",
    "dev_display_dl_classifier_heatmap": ".heatmap",
    "get_dl_classifier_image_results": ".image_results",
    "plot_dl_classifier_training_progress": ".plots",
    "preprocess_dl_classifier_images": ".preprocess",
    "TrainingHistory": ".training", "train_dl_classifier": ".training",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dlcls.procedures' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
