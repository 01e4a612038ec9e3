"""apply_dl_classifier_batchwise, evaluate_dl_classifier and core.metrics, checked against
straightforward loop computations on random predictions."""

import numpy as np
import pytest

import dlcls
from dlcls import errors
from dlcls.core import metrics
from dlcls.procedures.evaluate import apply_dl_classifier_batchwise, evaluate_dl_classifier
from dlcls.results import DLClassifierResult

CLASSES = ["pear", "apple", "fig", "banana"]  # deliberately unsorted: lookups must go by name


def make_handle(classes, size=16, batch_size=4):
    handle = dlcls.read_dl_classifier("compact")
    for name, value in [("classes", classes), ("image_dimensions", [size, size, 3]), ("batch_size", batch_size),
                        ("runtime", "cpu")]:
        dlcls.set_dl_classifier_param(handle, name, value)
    return handle


@pytest.fixture(scope="module")
def handle():
    return make_handle(CLASSES)


# -- independent reference computations: plain loops, no numpy tricks -------------------------

def ref_order(row):
    return sorted(range(len(row)), key=lambda j: -row[j])


def ref_topk(gt, conf, k, cls=None):
    images = [i for i in range(len(gt)) if cls is None or gt[i] == cls]
    hits = sum(1 for i in images if gt[i] in ref_order(conf[i])[:k])
    return 1 - hits / len(images)


def ref_matrix(gt, conf, n):
    matrix = [[0] * n for _ in range(n)]
    for i in range(len(gt)):
        matrix[ref_order(conf[i])[0]][gt[i]] += 1
    return matrix


def ref_precision_recall(matrix, c):
    predicted = sum(matrix[c])
    actual = sum(matrix[r][c] for r in range(len(matrix)))
    return (matrix[c][c] / predicted if predicted else 0.0), (matrix[c][c] / actual if actual else 0.0)


def ref_f(p, r):
    return 2 * p * r / (p + r) if p + r else 0.0


def ref_measures(gt, conf, n):
    """{(measure, class index or None): value} for precision, recall, f_score, top1/top2 error."""
    matrix = ref_matrix(gt, conf, n)
    per_class = [ref_precision_recall(matrix, c) for c in range(n)]
    values = {}
    for c, (p, r) in enumerate(per_class):
        values.update({("precision", c): p, ("recall", c): r, ("f_score", c): ref_f(p, r)})
    p, r = sum(x[0] for x in per_class) / n, sum(x[1] for x in per_class) / n
    values.update({("precision", None): p, ("recall", None): r, ("f_score", None): ref_f(p, r)})
    for k in (1, 2, 3):
        for c in [None, *range(n)]:
            values[(f"top{k}_error", c)] = ref_topk(gt, conf, k, c)
    return values, matrix


def random_case(seed):
    """Random classes (unsorted names), labels covering every class, confidences, chunked results."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 7))
    classes = [f"c{x}" for x in rng.permutation(n) * 7]
    count = int(rng.integers(n + 5, 80))
    gt = np.concatenate([rng.permutation(n), rng.integers(0, n, count - n)])
    logits = rng.normal(size=(count, n)) + 1.5 * np.eye(n)[gt] * rng.random((count, 1))
    conf = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    size = int(rng.integers(1, 9))
    results = [DLClassifierResult(conf[i : i + size], classes) for i in range(0, count, size)]
    return classes, gt.tolist(), conf, results


# -- evaluate_dl_classifier ---------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_every_measure_matches_the_loop_computation(seed):
    classes, gt, conf, results = random_case(seed)
    handle = make_handle(classes)
    expected, matrix = ref_measures(gt, conf.tolist(), len(classes))
    labels = gt if seed % 2 else [classes[g] for g in gt]  # indices and names alike
    for (measure, c), value in expected.items():
        name = "global" if c is None else classes[c]
        assert evaluate_dl_classifier(labels, handle, results, measure, name) == pytest.approx(value, abs=1e-12)
    absolute = evaluate_dl_classifier(labels, handle, results, "absolute_confusion_matrix", "global")
    assert absolute.tolist() == matrix
    relative = evaluate_dl_classifier(labels, handle, results, "relative_confusion_matrix", "global")
    for col in range(len(classes)):
        total = sum(matrix[r][col] for r in range(len(classes)))
        assert relative[:, col].tolist() == pytest.approx([matrix[r][col] / total for r in range(len(classes))])


def test_measures_and_classes_pair_and_broadcast(handle):
    classes, gt, conf, results = random_case(3)
    h = make_handle(classes)
    one_class = evaluate_dl_classifier(gt, h, results, ["precision", "recall", "top1_error"], "global")
    assert one_class == [evaluate_dl_classifier(gt, h, results, m, "global") for m in
                         ["precision", "recall", "top1_error"]]
    one_measure = evaluate_dl_classifier(gt, h, results, "recall", ["global", *classes])
    assert one_measure == [evaluate_dl_classifier(gt, h, results, "recall", c) for c in ["global", *classes]]
    paired = evaluate_dl_classifier(gt, h, results, ["recall", "precision"], [classes[0], classes[1]])
    assert paired == [evaluate_dl_classifier(gt, h, results, "recall", classes[0]),
                      evaluate_dl_classifier(gt, h, results, "precision", classes[1])]
    assert isinstance(evaluate_dl_classifier(gt, h, results, ["f_score"], ["global"]), float)


def test_one_result_handle_equals_chunked_handles():
    classes, gt, conf, results = random_case(4)
    h = make_handle(classes)
    whole = DLClassifierResult(conf, classes)
    for measure in ["top1_error", "top2_error", "precision", "recall", "f_score"]:
        assert evaluate_dl_classifier(gt, h, whole, measure, "global") == evaluate_dl_classifier(
            gt, h, results, measure, "global")


def test_k_larger_than_the_class_count_gives_no_error():
    classes, gt, conf, results = random_case(1)
    assert evaluate_dl_classifier(gt, make_handle(classes), results, "top50_error", "global") == 0.0


def good_case(handle):
    rng = np.random.default_rng(0)
    gt = [0, 1, 2, 3] * 3
    return gt, [DLClassifierResult(rng.dirichlet(np.ones(4), 12).astype(np.float32), CLASSES)]


@pytest.mark.parametrize("labels, measure, classes, error, text", [
    ([0, 1, 2, 4] * 3, "top1_error", "global", errors.InvalidLabelsError, "index"),
    ([0, 1, 2, -1] * 3, "top1_error", "global", errors.InvalidLabelsError, "index"),
    (["pear", "apple", "fig", "kiwi"] * 3, "top1_error", "global", errors.InvalidLabelsError, "kiwi"),
    ([0, 1, 2, 2] * 3, "top1_error", "global", errors.WrongParamValueError, "Not all classes are represented"),
    ([0, 1, 2, 3] * 2, "top1_error", "global", errors.InvalidLabelsError, "got 8 labels"),
    (None, "top_error", "global", errors.WrongParamValueError, "unknown evaluation measure"),
    (None, "top0_error", "global", errors.WrongParamValueError, "at least 1"),
    (None, "accuracy", "global", errors.WrongParamValueError, "unknown evaluation measure"),
    (None, "precision", "kiwi", errors.WrongParamValueError, "'global' or one of"),
    (None, "precision", 0, errors.WrongParamValueError, "'global' or one of"),
    (None, ["precision", "recall"], ["pear", "fig", "apple"], errors.WrongParamValueError, "same length"),
    (None, [], "global", errors.WrongParamValueError, "at least one"),
    (None, "precision", [], errors.WrongParamValueError, "at least one"),
    (None, "absolute_confusion_matrix", "pear", errors.WrongParamValueError, "'global'"),
])
def test_evaluation_errors(handle, labels, measure, classes, error, text):
    gt, results = good_case(handle)
    with pytest.raises(error, match=text):
        evaluate_dl_classifier(gt if labels is None else labels, handle, results, measure, classes)


def test_evaluation_rejects_wrong_handles(handle):
    gt, results = good_case(handle)
    with pytest.raises(errors.WrongHandleTypeError):
        evaluate_dl_classifier(gt, results[0], results, "top1_error", "global")
    with pytest.raises(errors.WrongHandleTypeError):
        evaluate_dl_classifier(gt, handle, [handle], "top1_error", "global")
    with pytest.raises(errors.WrongParamValueError, match="no result handles"):
        evaluate_dl_classifier(gt, handle, [], "top1_error", "global")
    other = [DLClassifierResult(results[0].confidences, sorted(CLASSES))]
    with pytest.raises(errors.WrongParamValueError, match="classifier that produced"):
        evaluate_dl_classifier(gt, handle, other, "top1_error", "global")


# -- apply_dl_classifier_batchwise ---------------------------------------------------------------

def network_images(count, size=16, seed=0):
    return np.random.default_rng(seed).uniform(-127, 128, (count, size, size, 3)).astype(np.float32)


def test_batchwise_apply_chunks_by_batch_size_and_ranks_every_class(handle):
    images = network_images(10)
    results, predicted, confidences = apply_dl_classifier_batchwise(list(images), handle)
    assert [len(r) for r in results] == [4, 4, 2]
    whole = dlcls.apply_dl_classifier(images, handle)
    for i in range(10):
        assert predicted[i] == whole.get(i, "predicted_classes")
        assert confidences[i] == pytest.approx(whole.get(i, "confidences"), abs=1e-6)
        assert sorted(predicted[i]) == sorted(CLASSES)
        assert confidences[i] == sorted(confidences[i], reverse=True)


def test_batchwise_results_evaluate_as_the_loops_say(handle):
    images = network_images(11, seed=2)
    results, _, _ = apply_dl_classifier_batchwise(images, handle)
    gt = [0, 1, 2, 3, 3, 2, 1, 0, 0, 2, 1]
    conf = dlcls.apply_dl_classifier(images, handle).confidences.tolist()
    expected, _ = ref_measures(gt, conf, len(CLASSES))
    for (measure, c), value in expected.items():
        name = "global" if c is None else CLASSES[c]
        assert evaluate_dl_classifier(gt, handle, results, measure, name) == pytest.approx(value, abs=1e-12)


def test_batchwise_apply_reads_files_through_load(handle, tmp_path):
    images = network_images(6, seed=1)
    files = []
    for i, image in enumerate(images):
        files.append(str(tmp_path / f"{i}.npy"))
        np.save(files[-1], image)
    calls = []

    def load(paths):
        calls.append(list(paths))
        return np.stack([np.load(p) for p in paths])

    results, predicted, _ = apply_dl_classifier_batchwise(files, handle, load=load)
    assert calls == [files[:4], files[4:]]
    assert predicted == apply_dl_classifier_batchwise(images, handle)[1]


def test_batchwise_apply_reads_and_preprocesses_image_files(handle, tmp_path):
    from PIL import Image

    files = []
    for i in range(5):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (30, 20, 3), dtype=np.uint8)).save(files[-1])
    _, predicted, confidences = apply_dl_classifier_batchwise(files, handle)
    expected = dlcls.apply_dl_classifier(dlcls.preprocess_dl_classifier_images(files, handle), handle)
    assert [p[0] for p in predicted] == expected.get("all", "predicted_classes")
    assert [c[0] for c in confidences] == expected.get("all", "confidences")


@pytest.mark.parametrize("bad, error", [
    (network_images(2, size=17), errors.ImageWidthError),
    (np.zeros((2, 17, 16, 3), np.float32), errors.ImageHeightError),
    (np.zeros((2, 16, 16, 1), np.float32), errors.ChannelError),
    (np.zeros((2, 16, 16, 3), np.uint8), errors.ImageTypeError),
    (np.full((2, 16, 16, 3), np.nan, np.float32), errors.UndefinedGrayValuesError),
])
def test_batchwise_apply_reraises_image_errors_with_halcons_message(handle, bad, error):
    images = list(network_images(5)) + list(bad)
    with pytest.raises(error, match="Images need to fulfill the network requirements, please provide preprocessed"
                                    r" images \(in the chunk from image 4 on: image 1 "):
        apply_dl_classifier_batchwise(images, handle)
    with pytest.raises(error, match="Images need to fulfill"):
        apply_dl_classifier_batchwise(["a", "b"], handle, load=lambda paths: bad)


def test_batchwise_apply_input_errors(handle):
    with pytest.raises(errors.WrongParamValueError, match="no images"):
        apply_dl_classifier_batchwise([], handle)
    with pytest.raises(errors.WrongParamValueError, match="no images"):
        apply_dl_classifier_batchwise([], handle, load=np.stack)
    with pytest.raises(errors.ModelFileNotFoundError, match="a.png"):  # files without `load` are read
        apply_dl_classifier_batchwise(["a.png", "b.png"], handle)
    with pytest.raises(errors.WrongHandleTypeError):
        apply_dl_classifier_batchwise(network_images(2), "not a handle")
    with pytest.raises(errors.WrongParamValueError, match="load returned 3 images for 2 files"):
        apply_dl_classifier_batchwise(["a", "b"], handle, load=lambda files: network_images(3))


# -- core.metrics edge cases --------------------------------------------------------------------

def test_metric_conventions_for_empty_rows_and_columns():
    matrix = metrics.confusion_matrix([0, 0, 1], [1, 1, 1], 3)
    assert matrix.tolist() == [[0, 0, 0], [2, 1, 0], [0, 0, 0]]
    precision, recall = metrics.class_precision_recall(matrix)
    assert precision.tolist() == [0.0, 1 / 3, 0.0]  # nothing predicted as 0 or 2: precision 0
    assert recall.tolist() == [0.0, 1.0, 0.0]  # class 2 never in the ground truth: 0
    assert metrics.precision_recall_f(matrix, 0) == (0.0, 0.0, 0.0)  # P + R = 0: F = 0
    assert metrics.relative_confusion_matrix(matrix)[:, 2].tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(metrics.topk_error([0, 1], np.eye(3)[:2], 1, cls=2))
