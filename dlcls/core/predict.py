"""Prediction: network batches -> softmax confidences. Shared by apply_dl_classifier, the offline
classify/evaluate jobs and the Serve replicas, so their confidences agree exactly."""

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn


@torch.inference_mode()
def predict(model: nn.Module, batch: torch.Tensor, device: torch.device) -> np.ndarray:
    """N x C x H x W images in network range -> N x classes float32 confidences (rows sum to 1)."""
    model.eval()
    logits = model(batch.to(device, non_blocking=True))
    return torch.softmax(logits.float(), dim=1).cpu().numpy()


def predict_all(model: nn.Module, batches: Iterable[torch.Tensor], device: torch.device) -> np.ndarray:
    return np.concatenate([predict(model, b, device) for b in batches])


def ranking(confidences: np.ndarray) -> np.ndarray:
    """Class indices per image by descending confidence; ties keep the class order (stable)."""
    return np.argsort(-confidences, axis=1, kind="stable")
