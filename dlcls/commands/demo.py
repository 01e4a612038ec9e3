"""Run the whole HALCON workflow on this machine: generate a labelled data set of machined parts
with defects, read and split it, preprocess, train, evaluate, and write every output.

example:
  dlcls demo --workdir ./dlcls-demo
"""

import argparse
import json
import time
from pathlib import Path

from .. import DLClassifier, set_seed, synthetic
from ..procedures.confusion import gen_confusion_matrix, gen_interactive_confusion_matrix
from ..procedures.dataset import read_dl_classifier_data_set, split_dl_classifier_data_set
from ..procedures.evaluate import apply_dl_classifier_batchwise, evaluate_dl_classifier
from ..procedures.image_results import get_dl_classifier_image_results
from ..procedures.plots import plot_dl_classifier_training_progress
from ..procedures.preprocess import preprocess_dl_classifier_images
from ..procedures.training import train_dl_classifier


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default="dlcls-demo",
                        help="where the data set and outputs go (default: %(default)s)")
    parser.add_argument("--per-class", type=int, default=300, help="images per class (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=64, help="network input side (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=16, help="training epochs (default: %(default)s)")
    parser.add_argument("--model", default="pretrained_dl_classifier_compact.hdl", help="network to start from")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)


def run(args: argparse.Namespace) -> int:
    started, work = time.perf_counter(), Path(args.workdir)
    set_seed(args.seed)
    print(f"generating {args.per_class} images per class of {list(synthetic.CLASSES)} in {work / 'images'}")
    synthetic.write_data_set(work / "images", args.per_class, size=64, seed=args.seed)
    files, labels, _, classes = read_dl_classifier_data_set(str(work / "images"), "last_folder")
    train_files, train_labels, val_files, val_labels, test_files, test_labels = split_dl_classifier_data_set(
        files, labels, 70, 15, seed=args.seed)
    handle = _classifier(args, classes)
    sets = {name: preprocess_dl_classifier_images(f, handle) for name, f in
            [("train", train_files), ("validation", val_files), ("test", test_files)]}
    print(f"training {args.model} for {args.epochs} epochs on {len(train_files)} images "
          f"({len(val_files)} for validation, {len(test_files)} for the test)")
    history = train_dl_classifier(handle, sets["train"], train_labels, sets["validation"], val_labels, args.epochs,
                                  augmentation={"mirror": "rc"}, step_epochs=max(1, args.epochs // 2),
                                  seed=args.seed, best_model=str(work / "model_best.hdl"))
    outputs = _evaluate(handle, test_files, sets["test"], test_labels, history, work)
    _summary(outputs, time.perf_counter() - started)
    return 0


def _classifier(args, classes: list[str]) -> DLClassifier:
    handle = DLClassifier.read(args.model)
    for name, value in [("classes", classes), ("image_dimensions", [args.image_size, args.image_size, 3]),
                        ("batch_size", args.batch_size), ("learning_rate", args.learning_rate)]:
        handle.set_param(name, value)
    return handle


def _evaluate(handle, files, images, labels, history, work: Path) -> dict:
    _, predicted, confidences = apply_dl_classifier_batchwise(images, handle)
    results = [handle.apply(images)]
    measures = ["top1_error", "precision", "recall", "f_score"]
    figures = dict(zip(measures, evaluate_dl_classifier(labels, handle, results, measures, "global")))
    top1 = [p[0] for p in predicted]
    gen_confusion_matrix(labels, top1, "display_matrix", "relative", output=str(work / "confusion_matrix.png"))
    gen_interactive_confusion_matrix(files, labels, top1, str(work / "confusion_matrix.html"))
    get_dl_classifier_image_results(files, labels, top1, [c[0] for c in confidences], only_wrong=True,
                                    output=str(work / "misclassified.png"))
    plot_dl_classifier_training_progress(history.training_errors, history.validation_errors,
                                         history.learning_rates, history.epochs,
                                         output=str(work / "training_progress.png"))
    handle.write(str(work / "model_final.hdl"))
    (work / "metrics.json").write_text(json.dumps({**figures, "best_epoch": history.best_epoch}, indent=2))
    return {"figures": figures, "work": work}


def _summary(outputs: dict, seconds: float) -> None:
    figures, work = outputs["figures"], outputs["work"]
    print(f"\ntest set: top-1 error {100 * figures['top1_error']:.1f}% (accuracy "
          f"{100 * (1 - figures['top1_error']):.1f}%), precision {figures['precision']:.3f}, "
          f"recall {figures['recall']:.3f}, F-score {figures['f_score']:.3f}")
    print(f"finished in {seconds:.0f} s; outputs:")
    for name in ["model_best.hdl", "model_final.hdl", "metrics.json", "training_progress.png",
                 "confusion_matrix.png", "confusion_matrix.html", "misclassified.png"]:
        print(f"  {work / name}")
