"""Frames -> PNG bytes and data URIs without PIL (a minimal 8-bit RGB encoder), thumbnails, frame sampling."""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray, level: int = 9) -> bytes:
    """PNG bytes of an H x W x 3 (or H x W grey) uint8 image."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"expected an H x W x 3 image, got shape {img.shape}")
    img = np.ascontiguousarray(img, dtype=np.uint8)
    h, w = img.shape[:2]
    raw = np.zeros((h, 1 + 3 * w), dtype=np.uint8)  # each scanline: filter byte 0 (None), then RGB bytes
    raw[:, 1:] = img.reshape(h, 3 * w)
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # bit depth 8, colour type 2 (RGB), no interlace
    idat = zlib.compress(raw.tobytes(), level)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def thumbnail(image: np.ndarray, max_side: int = 96) -> np.ndarray:
    """Shrink by an integer factor (box average) until the longer side is at most `max_side`."""
    img = np.asarray(image)
    k = -(-max(img.shape[:2]) // max_side)  # ceil
    if k <= 1:
        return img
    h, w = (img.shape[0] // k) * k, (img.shape[1] // k) * k
    blocks = img[:h, :w].reshape(h // k, k, w // k, k, -1).astype(np.float32)
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8).reshape(h // k, w // k, *img.shape[2:])


def sample_indices(n: int, k: int = 8) -> list[int]:
    """Up to `k` indices spread uniformly over range(n), always including the first and the last."""
    if n <= 0:
        return []
    if n <= k:
        return list(range(n))
    return sorted({int(i) for i in np.rint(np.linspace(0, n - 1, k))})
