"""The HALCON workflow procedures (HDevelop "Deep Learning / Classification")."""

from .augment import augment_images
from .confusion import gen_confusion_matrix, gen_interactive_confusion_matrix, write_confusion_matrix_parquet
from .dataset import read_dl_classifier_data_set, select_percentage_dl_classifier_data, split_dl_classifier_data_set
from .evaluate import apply_dl_classifier_batchwise, evaluate_dl_classifier
from .heatmap import dev_display_dl_classifier_heatmap
from .image_results import get_dl_classifier_image_results
from .plots import plot_dl_classifier_training_progress
from .preprocess import preprocess_dl_classifier_images
from .training import TrainingHistory, train_dl_classifier

__all__ = [
    "TrainingHistory", "apply_dl_classifier_batchwise", "augment_images", "dev_display_dl_classifier_heatmap",
    "evaluate_dl_classifier", "gen_confusion_matrix", "gen_interactive_confusion_matrix",
    "get_dl_classifier_image_results", "plot_dl_classifier_training_progress", "preprocess_dl_classifier_images",
    "read_dl_classifier_data_set", "select_percentage_dl_classifier_data", "split_dl_classifier_data_set",
    "train_dl_classifier", "write_confusion_matrix_parquet",
]
