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
from .procedures import (
    TrainingHistory,
    apply_dl_classifier_batchwise,
    augment_images,
    dev_display_dl_classifier_heatmap,
    evaluate_dl_classifier,
    gen_confusion_matrix,
    gen_interactive_confusion_matrix,
    get_dl_classifier_image_results,
    plot_dl_classifier_training_progress,
    preprocess_dl_classifier_images,
    read_dl_classifier_data_set,
    select_percentage_dl_classifier_data,
    split_dl_classifier_data_set,
    train_dl_classifier,
    write_confusion_matrix_parquet,
)
from .results import DLClassifierResult, DLClassifierTrainResult

__version__ = "0.1.0"

__all__ = [
    "DLClassifier", "DLClassifierResult", "DLClassifierTrainResult", "PretrainedWeightsWarning", "errors",
    "apply_dl_classifier", "clear_dl_classifier", "clear_dl_classifier_result", "clear_dl_classifier_train_result",
    "deserialize_dl_classifier", "get_dl_classifier_param", "get_dl_classifier_result",
    "get_dl_classifier_train_result", "read_dl_classifier", "serialize_dl_classifier", "set_dl_classifier_param",
    "set_pretrained_weights", "set_seed", "train_dl_classifier_batch", "write_dl_classifier",
    # workflow procedures
    "TrainingHistory", "apply_dl_classifier_batchwise", "augment_images", "dev_display_dl_classifier_heatmap",
    "evaluate_dl_classifier", "gen_confusion_matrix", "gen_interactive_confusion_matrix",
    "get_dl_classifier_image_results", "plot_dl_classifier_training_progress", "preprocess_dl_classifier_images",
    "read_dl_classifier_data_set", "select_percentage_dl_classifier_data", "split_dl_classifier_data_set",
    "train_dl_classifier", "write_confusion_matrix_parquet",
]
