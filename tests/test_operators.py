"""The 13 operators: training, applying, results, clearing, and each HALCON error."""

import copy
import gc
import pickle
import warnings
import weakref

import numpy as np
import pytest
import torch
from conftest import separable_batch
from PIL import Image
from torch import nn

import dlcls
from dlcls import errors
from dlcls.core.train_step import make_optimizer, train_step


def test_training_learns_a_separable_task(small_classifier):
    dlcls.set_seed(0)
    handle = small_classifier(batch_size=16)
    dlcls.set_dl_classifier_param(handle, "learning_rate", 0.01)
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(40):
        images, labels = separable_batch(rng, 16)
        result = dlcls.train_dl_classifier_batch(images, handle, labels)
        losses.append(dlcls.get_dl_classifier_train_result(result, "loss"))
    images, labels = separable_batch(rng, 300)
    predicted = dlcls.get_dl_classifier_result(dlcls.apply_dl_classifier(images, handle), "all",
                                               "predicted_class_indices")
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert np.mean(np.array(predicted) == labels) > 0.9  # chance is 1/3


def test_training_takes_exactly_batch_size_times_multiplier_images(small_classifier):
    handle = small_classifier(batch_size=4)
    dlcls.set_dl_classifier_param(handle, "batch_size_multiplier", 2)
    images, labels = separable_batch(np.random.default_rng(0), 8)
    dlcls.train_dl_classifier_batch(images, handle, labels)
    with pytest.raises(errors.BatchSizeError, match="4 \\* 2 = 8") as e:
        dlcls.train_dl_classifier_batch(images[:4], handle, labels[:4])
    assert e.value.code == 7800


def test_labels_by_name_and_by_index_train_identically(small_classifier):
    images, labels = separable_batch(np.random.default_rng(0), 8)
    names = [["a", "b", "c"][i] for i in labels]
    handles = []
    for _ in range(2):
        dlcls.set_seed(3)  # the new output layer draws from the seeded random state
        handles.append(small_classifier())
    dlcls.train_dl_classifier_batch(images, handles[0], labels)
    dlcls.train_dl_classifier_batch(images, handles[1], names)
    a, b = (h.network.state_dict() for h in handles)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("labels", [["a"] * 7 + ["z"], [0] * 7 + [3], [0] * 7 + [-1], [0] * 7, [True] * 8,
                                    [0.0] * 8, None, 1.5])
def test_invalid_labels_give_7714(small_classifier, labels):
    images, _ = separable_batch(np.random.default_rng(0), 8)
    with pytest.raises(errors.InvalidLabelsError) as e:
        dlcls.train_dl_classifier_batch(images, small_classifier(), labels)
    assert e.value.code == 7714


def test_training_and_applying_need_classes():
    handle = dlcls.read_dl_classifier("compact")
    dlcls.set_dl_classifier_param(handle, "batch_size", 1)
    image = np.zeros((224, 224, 3), np.float32)
    for call in (lambda: dlcls.apply_dl_classifier(image, handle),
                 lambda: dlcls.train_dl_classifier_batch(image, handle, [0])):
        with pytest.raises(errors.ClassesNotSetError, match="'classes'") as e:
            call()
        assert e.value.code == 7904


@pytest.mark.parametrize("image,error", [
    (np.zeros((32, 31, 3), np.float32), errors.ImageWidthError),
    (np.zeros((30, 32, 3), np.float32), errors.ImageHeightError),
    (np.zeros((32, 32, 1), np.float32), errors.ChannelError),
    (np.zeros((32, 32), np.float32), errors.ChannelError),
    (np.zeros((32, 32, 3), np.uint8), errors.ImageTypeError),
    (np.full((32, 32, 3), np.nan, np.float32), errors.UndefinedGrayValuesError),
    (Image.new("RGB", (32, 32)), errors.ImageTypeError),
    ("not an image", errors.ImageTypeError),
    (np.zeros((2, 2, 32, 32, 3), np.float32), errors.ImageTypeError),
])
def test_images_outside_the_network_requirements_are_refused(small_classifier, image, error):
    with pytest.raises(error) as e:
        dlcls.apply_dl_classifier(image, small_classifier())
    assert e.value.code == error.code
    assert isinstance(e.value, TypeError if error is errors.ImageTypeError else ValueError)


def test_accepted_image_forms_give_the_same_confidences(small_classifier):
    handle = small_classifier()
    dlcls.set_dl_classifier_param(handle, "image_num_channels", 1)
    batch = np.random.default_rng(0).uniform(-127, 128, (3, 32, 32, 1)).astype(np.float32)
    expected = dlcls.apply_dl_classifier(batch, handle).confidences
    forms = [list(batch), [b[:, :, 0] for b in batch], [Image.fromarray(b[:, :, 0], mode="F") for b in batch],
             [batch[:1], batch[1], batch[2].astype(np.float64)]]
    for form in forms:
        np.testing.assert_allclose(dlcls.apply_dl_classifier(form, handle).confidences, expected, atol=1e-6)


def _forward_sizes(handle) -> list[int]:
    """The number of images of every forward pass the network makes from now on."""
    sizes = []
    handle.network.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    return sizes


def test_training_runs_in_pieces_of_batch_size_and_accumulates_their_gradients(small_classifier):
    handle = small_classifier(batch_size=4)
    dlcls.set_dl_classifier_param(handle, "batch_size_multiplier", 3)
    dlcls.set_dl_classifier_param(handle, "momentum", 0.0)
    images, labels = separable_batch(np.random.default_rng(0), 12)
    twin = copy.deepcopy(handle.network).train()
    sizes, steps = _forward_sizes(handle), []
    handle.optimizer().register_step_post_hook(lambda *args: steps.append(1))
    dlcls.train_dl_classifier_batch(images, handle, labels)
    assert sizes == [4, 4, 4] and len(steps) == 1
    x, y = torch.from_numpy(images).permute(0, 3, 1, 2), torch.as_tensor(labels)
    loss = sum(nn.functional.cross_entropy(twin(x[i : i + 4]), y[i : i + 4]) for i in (0, 4, 8)) / 3
    loss.backward()
    with torch.no_grad():
        for p in twin.parameters():
            p -= 0.001 * p.grad
    for p, q in zip(handle.network.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_apply_runs_in_chunks_of_batch_size(small_classifier):
    handle = small_classifier(batch_size=4)
    sizes = _forward_sizes(handle)
    dlcls.apply_dl_classifier(separable_batch(np.random.default_rng(0), 11)[0], handle)
    assert sizes == [4, 4, 3]


def test_hyperparameters_changed_after_training_started_rule_the_next_step(small_classifier):
    handle = small_classifier(batch_size=8)
    rng = np.random.default_rng(0)
    images, labels = separable_batch(rng, 8)
    dlcls.train_dl_classifier_batch(images, handle, labels)  # the optimizer now holds momentum
    lr, mu, alpha = 0.05, 0.5, 0.01
    for name, value in [("learning_rate", lr), ("momentum", mu), ("weight_prior", alpha)]:
        dlcls.set_dl_classifier_param(handle, name, value)
    velocity = {k.removesuffix(".momentum_buffer"): v.clone() for k, v in handle._momentum().items()}
    twin = copy.deepcopy(handle.network).train()
    images, labels = separable_batch(rng, 8)
    loss = nn.functional.cross_entropy(twin(torch.from_numpy(images).permute(0, 3, 1, 2)), torch.as_tensor(labels))
    loss.backward()
    dlcls.train_dl_classifier_batch(images, handle, labels)
    for (name, p), q in zip(handle.network.named_parameters(), twin.parameters()):
        v = mu * velocity[name] + q.grad + alpha * q.detach()  # PyTorch's SGD form (see core/train_step.py)
        torch.testing.assert_close(p.detach(), q.detach() - lr * v, rtol=1e-5, atol=1e-6)


def test_changing_a_parameter_that_resets_layers_after_training_warns(small_classifier):
    handle = small_classifier("enhanced", size=48)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not trained yet: nothing is lost, nothing to say
        dlcls.set_dl_classifier_param(handle, "classes", ["a", "b", "c", "d"])
    images, labels = separable_batch(np.random.default_rng(0), 8, size=48)
    dlcls.train_dl_classifier_batch(images, handle, labels)
    with pytest.warns(UserWarning, match="classifier.4.*must be trained again"):
        dlcls.set_dl_classifier_param(handle, "classes", ["a", "b", "c"])
    with pytest.warns(UserWarning, match="classifier.1.*must be trained again"):
        dlcls.set_dl_classifier_param(handle, "image_width", 64)


def test_apply_takes_any_number_of_images_in_batch_size_chunks(small_classifier):
    handle = small_classifier(batch_size=8)
    images, _ = separable_batch(np.random.default_rng(0), 37)
    together = dlcls.apply_dl_classifier(images, handle).confidences
    one_by_one = np.concatenate([dlcls.apply_dl_classifier(i, handle).confidences for i in images])
    assert together.shape == (37, 3)
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)


def test_results_by_all_and_by_index(small_classifier):
    images, _ = separable_batch(np.random.default_rng(0), 5)
    result = dlcls.apply_dl_classifier(images, small_classifier())
    get = dlcls.get_dl_classifier_result
    top_classes, top_indices, top_conf = (get(result, "all", n) for n in
                                          ("predicted_classes", "predicted_class_indices", "confidences"))
    assert len(top_classes) == len(top_indices) == len(top_conf) == 5
    for i in range(5):
        ranked = get(result, i, "confidences")
        assert ranked == sorted(ranked, reverse=True) and abs(sum(ranked) - 1) < 1e-5
        assert get(result, i, "predicted_class_indices")[0] == top_indices[i]
        assert get(result, i, "predicted_classes")[0] == top_classes[i] == ["a", "b", "c"][top_indices[i]]
        assert sorted(get(result, i, "predicted_classes")) == ["a", "b", "c"]
        assert ranked[0] == top_conf[i]
    for bad_index in (5, -1, "first", 1.0):
        with pytest.raises(errors.ResultNotAvailableError) as e:
            get(result, bad_index, "confidences")
        assert e.value.code == 7723
    with pytest.raises(errors.UnknownParamError):
        get(result, "all", "predicted_confidences")  # HALCON has no such result


def test_train_result_gives_the_loss(small_classifier):
    images, labels = separable_batch(np.random.default_rng(0), 8)
    result = dlcls.train_dl_classifier_batch(images, small_classifier(), labels)
    assert np.isfinite(dlcls.get_dl_classifier_train_result(result, "loss"))
    with pytest.raises(errors.UnknownParamError):
        dlcls.get_dl_classifier_train_result(result, "total_loss")


def test_cleared_handles_cannot_be_used(small_classifier):
    handle = small_classifier()
    images, labels = separable_batch(np.random.default_rng(0), 8)
    train_result = dlcls.train_dl_classifier_batch(images, handle, labels)
    results = [dlcls.apply_dl_classifier(images, handle) for _ in range(2)]
    dlcls.clear_dl_classifier_result(tuple(results))
    dlcls.clear_dl_classifier_train_result(train_result)
    dlcls.clear_dl_classifier([handle])
    for call in [lambda: dlcls.get_dl_classifier_result(results[1], "all", "confidences"),
                 lambda: dlcls.get_dl_classifier_train_result(train_result, "loss"),
                 lambda: dlcls.apply_dl_classifier(images, handle),
                 lambda: dlcls.get_dl_classifier_param(handle, "classes"),
                 lambda: dlcls.write_dl_classifier(handle, "/tmp/never.hdl")]:
        with pytest.raises(errors.ClearedHandleError) as e:
            call()
        assert e.value.code == 7901


def test_a_handle_of_the_wrong_kind_is_refused(small_classifier):
    handle = small_classifier()
    result = dlcls.apply_dl_classifier(np.zeros((32, 32, 3), np.float32), handle)
    with pytest.raises(errors.WrongHandleTypeError) as e:
        dlcls.get_dl_classifier_param(result, "classes")
    assert isinstance(e.value, TypeError) and e.value.code == 1201
    with pytest.raises(errors.WrongHandleTypeError):
        dlcls.get_dl_classifier_result(handle, "all", "confidences")


def test_gradient_accumulation_equals_one_large_batch_without_batch_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x, y = torch.randn(8, 3, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    twin = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    twin.load_state_dict(net.state_dict())
    loss_a = train_step(net, make_optimizer(net, 0.1, 0.9, 0.0), x, y, micro_batch=8)
    loss_b = train_step(twin, make_optimizer(twin, 0.1, 0.9, 0.0), x, y, micro_batch=3)  # pieces of 3, 3, 2
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    for p, q in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_weight_prior_is_l2_regularisation_in_update_and_loss():
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    w0 = net.weight.detach().clone()
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0, 1])
    alpha, lr = 0.1, 0.5
    ce = nn.functional.cross_entropy(net(x), y)
    grad = torch.autograd.grad(ce, net.weight)[0]
    squares = sum(p.detach().square().sum() for p in net.parameters()).item()
    loss = train_step(net, make_optimizer(net, lr, 0.0, alpha), x, y, micro_batch=6)
    assert loss == pytest.approx(ce.item() + alpha / 2 * squares, rel=1e-5)
    torch.testing.assert_close(net.weight.detach(), w0 - lr * (grad + alpha * w0))


def _state(handle) -> dict:
    return {k: v.clone() for k, v in handle.network.state_dict().items()}


@pytest.mark.parametrize("failure", ["non-finite loss", "batch norm of one value"])
def test_a_failed_step_leaves_the_whole_network_untouched(small_classifier, failure):
    if failure == "non-finite loss":  # finite gray values whose sums overflow: batch norm sees inf
        handle, images = small_classifier(), np.full((8, 32, 32, 3), 3e38, np.float32)
    else:  # the last stage of compact sees 1x1 per channel at 15x15: batch norm refuses it
        handle, images = small_classifier(size=15, batch_size=1), np.ones((1, 15, 15, 3), np.float32)
    before = _state(handle)
    with pytest.raises(errors.TrainingFailedError) as e:
        dlcls.train_dl_classifier_batch(images, handle, [0] * len(images))
    assert e.value.code == 7720
    after = handle.network.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)
    confidences = dlcls.apply_dl_classifier(np.zeros_like(images), handle).confidences
    assert np.isfinite(confidences).all()


def _out_of_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


@pytest.mark.parametrize("call", ["train", "apply"])
def test_running_out_of_device_memory_is_4104_with_advice(small_classifier, monkeypatch, call):
    handle = small_classifier()
    images, labels = separable_batch(np.random.default_rng(0), 8)
    dlcls.apply_dl_classifier(images, handle)  # the runtime is initialised
    before = _state(handle)
    monkeypatch.setattr(handle.network, "forward", _out_of_memory)
    with pytest.raises(errors.DeviceOutOfMemoryError, match="lower 'batch_size'") as e:
        if call == "train":
            dlcls.train_dl_classifier_batch(images, handle, labels)
        else:
            dlcls.apply_dl_classifier(images, handle)
    assert e.value.code == 4104 and isinstance(e.value, MemoryError)
    assert all(torch.equal(before[k], v) for k, v in handle.network.state_dict().items())


def test_after_4104_the_failed_call_holds_no_memory_while_the_caller_handles_it(small_classifier, monkeypatch):
    handle = small_classifier()
    images, _ = separable_batch(np.random.default_rng(0), 8)
    held = []

    def forward(batch):
        activations = torch.ones(1000, 1000)  # what a real forward pass holds when it runs out
        held.append(weakref.ref(activations))
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(handle.network, "forward", forward)
    try:
        dlcls.apply_dl_classifier(images, handle)
    except errors.DeviceOutOfMemoryError:
        gc.collect()
        assert held[0]() is None  # freed: a retry with a smaller batch_size can use the memory


def test_a_network_that_does_not_fit_on_the_device_is_4104(small_classifier, monkeypatch):
    handle = small_classifier()
    monkeypatch.setattr(handle.network, "to", _out_of_memory)
    with pytest.raises(errors.DeviceOutOfMemoryError, match="'runtime' 'cpu'") as e:
        dlcls.apply_dl_classifier(np.zeros((32, 32, 3), np.float32), handle)
    assert e.value.code == 4104


def _error_classes() -> list[type]:
    return [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.HalconError)]


@pytest.mark.parametrize("error", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_survives_pickling_unchanged(error):
    """Ray pickles exceptions to carry them from its workers to the caller."""
    restored = pickle.loads(pickle.dumps(error("bad label")))
    assert type(restored) is error
    assert (str(restored), restored.message, restored.code) == (f"[{error.code}] bad label", "bad label", error.code)
    noted = error("bad label")
    noted.add_note("while reading shard 3")
    assert pickle.loads(pickle.dumps(noted)).__notes__ == ["while reading shard 3"]


def test_a_diverging_step_raises_7720_and_keeps_the_weights(small_classifier):
    handle = small_classifier()
    dlcls.set_dl_classifier_param(handle, "learning_rate", 1e30)
    rng = np.random.default_rng(0)
    with pytest.raises(errors.TrainingFailedError) as e:
        for _ in range(10):
            before = {k: v.clone() for k, v in handle.network.named_parameters()}
            images, labels = separable_batch(rng, 8)
            dlcls.train_dl_classifier_batch(images, handle, labels)
    assert e.value.code == 7720 and "learning_rate" in str(e.value)
    assert all(torch.equal(before[k], v) for k, v in handle.network.named_parameters())


def test_a_batch_of_one_image_at_the_minimum_size_gives_a_clear_error(small_classifier):
    handle = small_classifier(size=15, batch_size=1)
    with pytest.raises(errors.TrainingFailedError, match="batch_size >= 2"):
        dlcls.train_dl_classifier_batch(np.zeros((1, 15, 15, 3), np.float32), handle, [0])
