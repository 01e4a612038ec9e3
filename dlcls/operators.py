"""The 13 HALCON classifier operators, with HALCON's names and argument order.

Each is a thin call onto the handle objects (`DLClassifier`, `DLClassifierResult`,
`DLClassifierTrainResult`); behaviour and errors are documented there and in the README.
"""

from . import errors
from .classifier import DLClassifier
from .results import DLClassifierResult, DLClassifierTrainResult


def _expect(handle, kind: type):
    if not isinstance(handle, kind):
        raise errors.WrongHandleTypeError(f"expected a {kind.__name__}, got {type(handle).__name__}")
    return handle


def read_dl_classifier(file_name: str) -> DLClassifier:
    """A model file (path or URL) or a built-in network: 'pretrained_dl_classifier_compact.hdl',
    '..._enhanced.hdl', '..._resnet18.hdl', '..._resnet50.hdl', '..._alexnet.hdl' (or 'compact', ...)."""
    return DLClassifier.read(file_name)


def write_dl_classifier(dl_classifier_handle: DLClassifier, file_name: str) -> None:
    """Write the whole handle to `file_name` (path or URL), atomically."""
    _expect(dl_classifier_handle, DLClassifier).write(file_name)


def serialize_dl_classifier(dl_classifier_handle: DLClassifier) -> bytes:
    return _expect(dl_classifier_handle, DLClassifier).to_bytes()


def deserialize_dl_classifier(serialized_item: bytes) -> DLClassifier:
    if not isinstance(serialized_item, (bytes, bytearray, memoryview)):
        raise errors.WrongHandleTypeError(
            f"expected the bytes of serialize_dl_classifier, got {type(serialized_item).__name__}")
    return DLClassifier.from_bytes(serialized_item)


def set_dl_classifier_param(dl_classifier_handle: DLClassifier, gen_param_name: str, gen_param_value) -> None:
    _expect(dl_classifier_handle, DLClassifier).set_param(gen_param_name, gen_param_value)


def get_dl_classifier_param(dl_classifier_handle: DLClassifier, gen_param_name: str):
    return _expect(dl_classifier_handle, DLClassifier).get_param(gen_param_name)


def train_dl_classifier_batch(batch_images, dl_classifier_handle: DLClassifier,
                              batch_labels) -> DLClassifierTrainResult:
    """One SGD step on exactly batch_size * batch_size_multiplier preprocessed images; labels are
    class names or indices."""
    return _expect(dl_classifier_handle, DLClassifier).train_batch(batch_images, batch_labels)


def get_dl_classifier_train_result(dl_classifier_train_result_handle: DLClassifierTrainResult, gen_param_name: str):
    return _expect(dl_classifier_train_result_handle, DLClassifierTrainResult).get(gen_param_name)


def apply_dl_classifier(images, dl_classifier_handle: DLClassifier) -> DLClassifierResult:
    """Classify any number of preprocessed images (in chunks of batch_size)."""
    return _expect(dl_classifier_handle, DLClassifier).apply(images)


def get_dl_classifier_result(dl_classifier_result_handle: DLClassifierResult, index, gen_result_name: str):
    """'all': the top-1 class/index/confidence of every image; an image index: all classes of that
    image by descending confidence."""
    return _expect(dl_classifier_result_handle, DLClassifierResult).get(index, gen_result_name)


def _clear(handles, kind: type) -> None:
    for handle in handles if isinstance(handles, (list, tuple)) else [handles]:
        _expect(handle, kind).clear()


def clear_dl_classifier(dl_classifier_handle) -> None:
    _clear(dl_classifier_handle, DLClassifier)


def clear_dl_classifier_result(dl_classifier_result_handle) -> None:
    _clear(dl_classifier_result_handle, DLClassifierResult)


def clear_dl_classifier_train_result(dl_classifier_train_result_handle) -> None:
    _clear(dl_classifier_train_result_handle, DLClassifierTrainResult)
