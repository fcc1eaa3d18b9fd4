"""Pluggable text and image embedders for retrieval-augmented judging (docs/vla_score.md §5).

A text embedder has `embed_texts(list[str]) -> N x D`; an image embedder has `embed_images(N x H x W x 3
uint8) -> N x D`. Rows are L2-normalised float32 (an all-zero input row stays zero), so a dot product is the
cosine similarity. Each embedder carries a `name` and a `version`; the knowledge-base index stores both and
refuses to be queried with anything else, because vectors of two embedders (or two versions of one) are
not comparable.

Built in (one registry, `EMBEDDERS`, lazy "module:attr" entries; third parties add entries through the
`vlascore.embedders` entry-point group):

    hashing    text   offline default: signed feature hashing of word unigrams + bigrams
    histogram  image  offline default: coarse joint colour histogram + 8x8 colour thumbnail
    openai     text   an OpenAI-compatible `POST /v1/embeddings` endpoint, through the `openai` client
    clip       both   CLIP via `transformers` (extra `models`), default `openai/clip-vit-base-patch32`

An embedder is named by a spec string: `NAME` or `NAME:MODEL` (e.g. `openai:text-embedding-3-large`,
`clip:openai/clip-vit-large-patch14`); the part after the colon is the embedder's `model` option.

**[decision]** The offline defaults exist so that retrieval works with no network and no download, and
so that tests are deterministic. They are lexical/colour-level stand-ins for the paper's text-embedding
model and CLIP ViT-B/32: good enough to pick a task family from an instruction and a visually close
scene among a few dozen reference trajectories, not a semantic model.
**[decision]** `hashing`: lower-cased `[a-z0-9]+` words minus a short stop-word list, unigrams and
bigrams, each hashed with BLAKE2b (stable across processes and machines, unlike Python's salted `hash()`)
into 1024 signed buckets, counts weighted by 1 + log(tf), L2-normalised.
**[decision]** `histogram`: 4 x 4 x 4 joint RGB histogram (square-rooted, i.e. the Hellinger embedding)
concatenated with an 8 x 8 box-averaged colour thumbnail centred on its own mean (layout, not overall
brightness), each half L2-normalised and weighted equally, then the whole L2-normalised.
**[decision]** `openai` options come from the spec's model part, constructor options, or the environment:
`VLASCORE_EMBEDDINGS_MODEL` (default `text-embedding-3-small`), `VLASCORE_EMBEDDINGS_BASE_URL` (else the
client's own `OPENAI_BASE_URL`/default), and the API key from the variable named by `api_key_env`
(default `OPENAI_API_KEY`). Its version records the model, so re-pointing an index at another model fails.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from vlascore.registry import Registry, UnknownPluginError


class EmbedderError(ValueError):
    """An embedder that cannot be built or used (unknown name, wrong kind, missing key, bad reply)."""


@runtime_checkable
class TextEmbedder(Protocol):
    name: str
    version: str

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...


@runtime_checkable
class ImageEmbedder(Protocol):
    name: str
    version: str

    def embed_images(self, images: np.ndarray) -> np.ndarray: ...


EMBEDDERS: Registry[Any] = Registry("embedder", "vlascore.embedders")
"""Embedder name -> class (or factory) taking keyword options; `kinds` says what it embeds."""
EMBEDDERS.register("hashing", "vlascore.judging.embedders:HashingTextEmbedder")
EMBEDDERS.register("histogram", "vlascore.judging.embedders:HistogramImageEmbedder")
EMBEDDERS.register("openai", "vlascore.judging.embedders:OpenAITextEmbedder")
EMBEDDERS.register("clip", "vlascore.judging.embedders:ClipEmbedder")


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32; zero rows stay zero."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _check_images(images: np.ndarray) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise EmbedderError(f"expected N x H x W x 3 uint8 images, got shape {arr.shape} dtype {arr.dtype}")
    return arr


# -- hashing (text, offline default) --------------------------------------------------------------------
STOP_WORDS = frozenset({"a", "an", "the", "and", "it", "its", "of", "to", "then", "please", "with"})
_WORD = re.compile(r"[a-z0-9]+")


class HashingTextEmbedder:
    """Signed feature hashing of word unigrams and bigrams; deterministic, offline, instant."""

    name = "hashing"
    kinds: ClassVar[frozenset[str]] = frozenset({"text"})

    def __init__(self, dim: int = 1024) -> None:
        if dim < 16:
            raise EmbedderError(f"hashing embedder: dim must be at least 16, got {dim}")
        self.dim = int(dim)
        self.version = f"1+d{self.dim}"

    @staticmethod
    def features(text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]
        return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]

    def _bucket(self, feature: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
        return (h >> 1) % self.dim, (1.0 if h & 1 else -1.0)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for row, text in enumerate(texts):
            counts: dict[str, int] = {}
            for f in self.features(text):
                counts[f] = counts.get(f, 0) + 1
            for f, tf in counts.items():
                bucket, sign = self._bucket(f)
                out[row, bucket] += sign * (1.0 + np.log(tf))
        return l2_normalise(out)


# -- histogram (image, offline default) -----------------------------------------------------------------
def _box_resize(images: np.ndarray, size: int) -> np.ndarray:
    """N x H x W x C -> N x size x size x C by averaging each of size x size near-equal cells."""
    n, h, w, _ = images.shape

    def averaging(length: int) -> np.ndarray:
        cell = np.minimum(np.arange(length) * size // length, size - 1)
        m = np.zeros((size, length))
        m[cell, np.arange(length)] = 1.0
        return m / m.sum(axis=1, keepdims=True).clip(min=1)

    return np.einsum("ah,nhwc,bw->nabc", averaging(h), images.astype(np.float64), averaging(w))


class HistogramImageEmbedder:
    """Joint colour histogram + tiny thumbnail: tells tabletop scenes apart by colours and layout."""

    name = "histogram"
    kinds: ClassVar[frozenset[str]] = frozenset({"image"})

    def __init__(self, bins: int = 4, thumb: int = 8) -> None:
        if not 2 <= bins <= 16 or not 2 <= thumb <= 32:
            raise EmbedderError(f"histogram embedder: need 2 <= bins <= 16 and 2 <= thumb <= 32, got {bins}, {thumb}")
        self.bins, self.thumb = int(bins), int(thumb)
        self.version = f"1+b{self.bins}+t{self.thumb}"

    def embed_images(self, images: np.ndarray) -> np.ndarray:
        imgs = _check_images(images)
        n = len(imgs)
        q = (imgs.astype(np.int64) * self.bins) // 256  # per-channel bin
        codes = (q[..., 0] * self.bins + q[..., 1]) * self.bins + q[..., 2]
        k = self.bins**3
        offsets = (np.arange(n) * k)[:, None]
        hist = np.bincount((codes.reshape(n, -1) + offsets).ravel(), minlength=n * k).reshape(n, k)
        hist = np.sqrt(hist / max(1, codes[0].size))
        thumb = _box_resize(imgs, self.thumb).reshape(n, -1) / 255.0
        thumb -= thumb.mean(axis=1, keepdims=True)
        return l2_normalise(np.concatenate([l2_normalise(hist), l2_normalise(thumb)], axis=1))


# -- openai (text) ----------------------------------------------------------------------------------------
class OpenAITextEmbedder:
    """An OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, vLLM, TEI, Ollama...)."""

    name = "openai"
    kinds: ClassVar[frozenset[str]] = frozenset({"text"})

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        batch_size: int = 64,
        timeout_s: float = 60.0,
        client: Any = None,
    ) -> None:
        self.model = model or os.environ.get("VLASCORE_EMBEDDINGS_MODEL") or "text-embedding-3-small"
        self.base_url = base_url or os.environ.get("VLASCORE_EMBEDDINGS_BASE_URL") or None
        self.api_key_env = api_key_env
        self.batch_size = max(1, int(batch_size))
        self.timeout_s = timeout_s
        self.version = f"1+{self.model}"
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import openai

            key = os.environ.get(self.api_key_env)
            if not key:
                raise EmbedderError(
                    f"openai embedder: ${self.api_key_env} is not set; export it (any non-empty value for a local "
                    "server), or pick another variable with the embedder's api_key_env option"
                )
            self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout_s)
        return self._client

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import openai

        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t if t.strip() else " " for t in texts[start : start + self.batch_size]]  # "" is rejected
            try:
                reply = self.client.embeddings.create(model=self.model, input=batch, encoding_format="float")
            except openai.OpenAIError as exc:
                where = self.base_url or "the default endpoint"
                raise EmbedderError(f"openai embedder: request to {where} failed: {exc}") from exc
            data = sorted(reply.data, key=lambda d: d.index)
            if len(data) != len(batch):
                raise EmbedderError(f"openai embedder: sent {len(batch)} texts, got {len(data)} embeddings back")
            rows.extend(list(d.embedding) for d in data)
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return l2_normalise(np.asarray(rows, dtype=np.float64))


# -- clip (text and image, extra `models`) ----------------------------------------------------------------
class ClipEmbedder:
    """CLIP through `transformers` (the paper's scene embedder is CLIP ViT-B/32); text and image."""

    name = "clip"
    kinds: ClassVar[frozenset[str]] = frozenset({"text", "image"})

    def __init__(
        self,
        model: str = "openai/clip-vit-base-patch32",
        device: str = "cpu",
        batch_size: int = 32,
        components: tuple[Any, Any, Any] | None = None,
    ) -> None:
        """`components` = (CLIPModel, tokenizer, image processor) already built (tests, custom weights)."""
        self.model_name = model
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.version = f"1+{model}"
        self._components = components

    def _parts(self) -> tuple[Any, Any, Any]:
        if self._components is None:
            from vlascore.extras import require

            transformers = require("transformers", "models", purpose="the clip embedder")
            model = transformers.CLIPModel.from_pretrained(self.model_name)
            tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_name)
            processor = transformers.CLIPImageProcessor.from_pretrained(self.model_name)
            self._components = (model.to(self.device).eval(), tokenizer, processor)
        return self._components

    @staticmethod
    def _features(out: Any) -> np.ndarray:
        # transformers 4.x returns a tensor; later versions may return an output object with the projection.
        tensor = out if hasattr(out, "detach") else getattr(out, "pooler_output", None)
        if tensor is None:
            tensor = out[0]
        return tensor.detach().float().cpu().numpy()

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        model, tokenizer, _ = self._parts()
        rows = []
        for start in range(0, len(texts), self.batch_size):
            batch = tokenizer(
                list(texts[start : start + self.batch_size]), padding=True, truncation=True, return_tensors="pt"
            )
            with torch.no_grad():
                rows.append(self._features(model.get_text_features(**batch.to(self.device))))
        return l2_normalise(np.concatenate(rows)) if rows else np.zeros((0, 0), dtype=np.float32)

    def embed_images(self, images: np.ndarray) -> np.ndarray:
        import torch

        imgs = _check_images(images)
        model, _, processor = self._parts()
        rows = []
        for start in range(0, len(imgs), self.batch_size):
            pixels = processor(images=list(imgs[start : start + self.batch_size]), return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                rows.append(self._features(model.get_image_features(pixel_values=pixels.to(self.device))))
        return l2_normalise(np.concatenate(rows)) if rows else np.zeros((0, 0), dtype=np.float32)


# -- lookup -------------------------------------------------------------------------------------------------
def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """`NAME` or `NAME:MODEL` -> (name, options)."""
    name, sep, model = spec.strip().partition(":")
    return name, ({"model": model} if sep and model else {})


def make_embedder(spec: str, kind: str, **options: Any) -> Any:
    """Build the embedder `spec` names, checking that it embeds `kind` ("text" or "image")."""
    name, parsed = parse_spec(spec)
    try:
        cls = EMBEDDERS.get(name)
    except UnknownPluginError as exc:
        raise EmbedderError(str(exc)) from None
    kinds: frozenset[str] = getattr(cls, "kinds", frozenset())
    if kind not in kinds:
        fits = [n for n in EMBEDDERS.names() if kind in getattr(_safe_get(n), "kinds", ())]
        raise EmbedderError(f"embedder {name!r} does not embed {kind}s; {kind} embedders: {', '.join(fits)}")
    try:
        return cls(**{**parsed, **options})
    except TypeError as exc:
        raise EmbedderError(
            f"embedder {name!r} does not take the options {sorted({**parsed, **options})}: {exc}"
        ) from exc


def _safe_get(name: str) -> Any:
    try:
        return EMBEDDERS.get(name)
    except Exception:  # noqa: BLE001 - listing must survive one broken plugin
        return None


@lru_cache(maxsize=8)
def _cached(spec: str, kind: str) -> Any:
    return make_embedder(spec, kind)


def text_embedder(spec: str = "hashing", **options: Any) -> TextEmbedder:
    """The text embedder `spec` names; built once per process when no options are given (CLIP loads once)."""
    return make_embedder(spec, "text", **options) if options else _cached(spec, "text")


def image_embedder(spec: str = "histogram", **options: Any) -> ImageEmbedder:
    """The image embedder `spec` names; built once per process when no options are given."""
    return make_embedder(spec, "image", **options) if options else _cached(spec, "image")


def embed_scene(embedder: ImageEmbedder, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """One vector for an episode: the L2-normalised mean of its frames' embeddings (**[decision]** mean pooling)."""
    arr = _check_images(np.asarray(frames))
    if len(arr) == 0:
        raise EmbedderError("cannot embed a scene with no frames")
    return l2_normalise(embedder.embed_images(arr).mean(axis=0, keepdims=True))[0]
