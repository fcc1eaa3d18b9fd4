"""Small grey frames and their motion images: what the frame-based scene triggers look at."""

from __future__ import annotations

import numpy as np

_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma


def small_grey(frames: np.ndarray, side: int) -> np.ndarray:
    """(M, H, W, 3) uint8 -> (M, h, w) float32 in [0, 1], shrunk by an integer factor to at most `side` pixels."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (M, H, W, 3), got {frames.shape}")
    if len(frames) == 0:
        return np.zeros((0, 1, 1), dtype=np.float32)
    k = -(-max(frames.shape[1:3]) // side)  # the same integer factor for every frame
    if k > 1:
        h, w = (frames.shape[1] // k) * k, (frames.shape[2] // k) * k
        blocks = frames[:, :h, :w].reshape(len(frames), h // k, k, w // k, k, 3).astype(np.float32)
        small = blocks.mean(axis=(2, 4))
    else:
        small = frames.astype(np.float32)
    return (small @ _GREY) / 255.0


def motion(grey: np.ndarray) -> np.ndarray:
    """(M, h, w) signed difference of each frame from the previous one (zeros for the first)."""
    out = np.zeros_like(grey)
    out[1:] = grey[1:] - grey[:-1]
    return out
