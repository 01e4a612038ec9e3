"""The training step: one SGD update over a batch, with gradient accumulation.

Shared by train_dl_classifier_batch and the Ray Train workers (where `model` is DDP-wrapped and
each worker passes its share of the global batch).

Momentum follows PyTorch's SGD: v <- mu*v + g, w <- w - lr*v (g includes weight_prior * w).
The HALCON formula in the spec, v <- mu*v - lr*g, w <- w + v, is marked unconfirmed [M]; the two
agree step for step while the learning rate stays the same (their v differ by the factor -lr)
and differ only right after a learning-rate change, when PyTorch's form applies the new rate to
the whole accumulated velocity while HALCON's keeps the old rate in it. dlcls keeps PyTorch's
form because it is torch.optim.SGD, the same optimizer the DDP workers of Ray Train step, so
local and distributed training compute identical updates.
"""

from contextlib import nullcontext

import torch
from torch import nn

from .. import errors


def make_optimizer(model: nn.Module, learning_rate: float, momentum: float, weight_prior: float) -> torch.optim.SGD:
    # weight_decay = alpha adds alpha * w to each gradient: the gradient of alpha/2 * ||w||^2.
    return torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum, weight_decay=weight_prior)


def set_hyperparameters(optimizer: torch.optim.SGD, learning_rate: float, momentum: float, weight_prior: float):
    for group in optimizer.param_groups:
        group.update(lr=learning_rate, momentum=momentum, weight_decay=weight_prior)


def train_step(model: nn.Module, optimizer: torch.optim.SGD, images: torch.Tensor, labels: torch.Tensor,
               micro_batch: int, scale: float = 1.0) -> float:
    """One optimizer step over `images` (N x C x H x W) fed in micro-batches of `micro_batch`
    (HALCON's batch_size; N / micro_batch is the batch_size_multiplier). Returns the loss of
    the step: mean softmax cross-entropy + weight_prior/2 * sum of squared weights. `scale`
    weighs this process's gradient (DDP workers with unequal shares of a step).

    A failure leaves the network as it was: a non-finite loss (7720) raises before the update,
    and the batch-norm statistics that the forward already moved are put back.
    """
    buffers = {name: b.clone() for name, b in model.named_buffers()}  # small: batch-norm statistics
    try:
        return _step(model, optimizer, images, labels, micro_batch, scale)
    except BaseException:
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        raise


def _step(model: nn.Module, optimizer: torch.optim.SGD, images: torch.Tensor, labels: torch.Tensor,
          micro_batch: int, scale: float) -> float:
    model.train()
    optimizer.zero_grad(set_to_none=True)
    pieces = list(zip(images.split(micro_batch), labels.split(micro_batch)))
    no_sync = getattr(model, "no_sync", nullcontext)  # DDP: all-reduce once, on the last piece
    loss_sum = torch.zeros((), device=images.device)
    for i, (x, y) in enumerate(pieces):
        with no_sync() if i < len(pieces) - 1 else nullcontext():
            loss = nn.functional.cross_entropy(_forward(model, x), y) * (len(x) / len(images))
            (loss * scale if scale != 1.0 else loss).backward()
        loss_sum += loss.detach()
    loss_value = loss_sum.item() + _prior(optimizer)
    if not torch.isfinite(torch.tensor(loss_value)):
        raise errors.TrainingFailedError(
            f"the loss became {loss_value}; lower 'learning_rate' or check the images and labels")
    optimizer.step()
    return loss_value


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    try:
        return model(x)
    except ValueError as e:  # batch norm refuses a batch with a single value per channel
        raise errors.TrainingFailedError(
            f"the training step failed ({e}): batch normalisation needs more than one value per channel; "
            "use batch_size >= 2 or larger images") from None


def _prior(optimizer: torch.optim.SGD) -> float:
    alpha = optimizer.param_groups[0]["weight_decay"]
    if alpha == 0:
        return 0.0
    with torch.no_grad():
        return 0.5 * alpha * sum(p.square().sum() for g in optimizer.param_groups for p in g["params"]).item()
