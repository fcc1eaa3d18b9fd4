"""Embedders: the offline defaults are deterministic and normalised; openai speaks the real wire protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vlascore.extras import MissingExtraError, available
from vlascore.judging.embedders import (
    EMBEDDERS,
    ClipEmbedder,
    EmbedderError,
    HashingTextEmbedder,
    HistogramImageEmbedder,
    OpenAITextEmbedder,
    embed_scene,
    image_embedder,
    parse_spec,
    text_embedder,
)
from vlascore.judging.mockserver import MockOpenAI

INSTRUCTIONS = [
    "pick up the red cube and move it to the green goal position",
    "push the blue cube onto the red and white target",
    "stack the red cube on top of the green cube",
    "pull the cube back onto the red and white target",
    "place the ball into the shallow bin",
]


def _norms(v: np.ndarray) -> np.ndarray:
    return np.linalg.norm(v.astype(np.float64), axis=1)


def test_hashing_is_deterministic_normalised_and_lexical() -> None:
    emb = HashingTextEmbedder()
    a = emb.embed_texts([*INSTRUCTIONS, ""])
    assert a.dtype == np.float32 and a.shape == (6, 1024)
    np.testing.assert_allclose(_norms(a[:5]), 1.0, atol=1e-6)
    assert not a[5].any()  # no words: a zero vector, not NaN
    np.testing.assert_array_equal(a, HashingTextEmbedder().embed_texts([*INSTRUCTIONS, ""]))
    sims = emb.embed_texts(["pick up the red cube and move it to the green goal"]) @ a[:5].T
    assert int(np.argmax(sims)) == 0 and sims[0, 0] > 0.8
    assert emb.features("Pick up THE cube!") == ["pick", "up", "cube", "pick up", "up cube"]


def test_hashing_does_not_depend_on_python_hash_seed() -> None:
    code = (
        "import json; from vlascore.judging.embedders import HashingTextEmbedder as H; "
        "print(json.dumps(H(dim=64).embed_texts(['stack the red cube']).round(6).tolist()))"
    )
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outs.append(json.loads(res.stdout))
    assert outs[0] == outs[1]
    np.testing.assert_allclose(outs[0], HashingTextEmbedder(dim=64).embed_texts(["stack the red cube"]), atol=1e-6)


def _scene(seed: int, size: int = 32, colour: tuple[int, int, int] = (220, 30, 30)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 90, np.uint8)
    y, x = rng.integers(0, size - size // 4, 2)
    img[y : y + size // 4, x : x + size // 4] = colour
    return img


def test_histogram_is_deterministic_normalised_and_size_independent() -> None:
    emb = HistogramImageEmbedder()
    imgs = np.stack([_scene(s) for s in range(4)])
    a = emb.embed_images(imgs)
    assert a.dtype == np.float32 and a.shape == (4, 4**3 + 8 * 8 * 3)
    np.testing.assert_allclose(_norms(a), 1.0, atol=1e-6)
    np.testing.assert_array_equal(a, HistogramImageEmbedder().embed_images(imgs.copy()))
    big = emb.embed_images(imgs.repeat(4, axis=1).repeat(4, axis=2))  # the same scenes at 128 px
    assert big.shape == a.shape and np.all(np.sum(a * big, axis=1) > 0.99)
    green = emb.embed_images(_scene(0, colour=(30, 200, 30))[None])[0]
    assert a[0] @ a[1] > a[0] @ green  # same colours elsewhere beat other colours in the same place
    flat = emb.embed_images(np.full((1, 8, 8, 3), 7, np.uint8))  # no layout signal: the histogram half only
    np.testing.assert_allclose(_norms(flat), 1.0, atol=1e-6)


def test_histogram_rejects_non_images() -> None:
    with pytest.raises(EmbedderError, match="uint8"):
        HistogramImageEmbedder().embed_images(np.zeros((2, 8, 8, 3), np.float32))


def test_scene_embedding_is_a_normalised_mean() -> None:
    emb = HistogramImageEmbedder()
    frames = np.stack([_scene(s) for s in range(3)])
    v = embed_scene(emb, frames)
    mean = emb.embed_images(frames).mean(axis=0)
    np.testing.assert_allclose(v, mean / np.linalg.norm(mean), atol=1e-6)
    with pytest.raises(EmbedderError, match="no frames"):
        embed_scene(emb, frames[:0])


def test_registry_lookup_errors_name_the_fix() -> None:
    assert {"hashing", "histogram", "openai", "clip"} <= set(EMBEDDERS.names())
    assert parse_spec("openai:text-embedding-3-large") == ("openai", {"model": "text-embedding-3-large"})
    assert text_embedder("hashing") is text_embedder("hashing")  # built once per process
    with pytest.raises(EmbedderError, match="Did you mean 'hashing'"):
        text_embedder("hashng")
    with pytest.raises(EmbedderError, match="does not embed images; image embedders: clip, histogram"):
        image_embedder("hashing")
    with pytest.raises(EmbedderError, match="does not take the options"):
        text_embedder("hashing:some-model")


def test_openai_embedder_against_a_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLASCORE_TEST_EMBED_KEY", "sk-local")
    with MockOpenAI(embed_dim=16) as server:
        emb = text_embedder(
            "openai:mock-embed", base_url=server.url, api_key_env="VLASCORE_TEST_EMBED_KEY", batch_size=2
        )
        assert isinstance(emb, OpenAITextEmbedder) and (emb.name, emb.version) == ("openai", "1+mock-embed")
        v = emb.embed_texts(["pick the cube", "push the cube", "pick the cube"])
        assert v.shape == (3, 16) and v.dtype == np.float32
        np.testing.assert_allclose(_norms(v), 1.0, atol=1e-6)
        np.testing.assert_array_equal(v[0], v[2])
        assert not np.allclose(v[0], v[1])
        bodies = server.requests
    assert [b["_path"] for b in bodies] == ["/v1/embeddings", "/v1/embeddings"]  # batches of 2
    assert bodies[0]["model"] == "mock-embed" and bodies[0]["input"] == ["pick the cube", "push the cube"]
    assert bodies[0]["encoding_format"] == "float"


def test_openai_embedder_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLASCORE_TEST_EMBED_KEY", raising=False)
    with pytest.raises(EmbedderError, match=r"\$VLASCORE_TEST_EMBED_KEY is not set"):
        OpenAITextEmbedder(api_key_env="VLASCORE_TEST_EMBED_KEY").embed_texts(["x"])
    monkeypatch.setenv("VLASCORE_TEST_EMBED_KEY", "sk-local")
    with MockOpenAI() as server:
        url = server.url
    dead = OpenAITextEmbedder(base_url=url, api_key_env="VLASCORE_TEST_EMBED_KEY", timeout_s=2)
    dead.client.max_retries = 0  # the server is gone: fail fast
    with pytest.raises(EmbedderError, match="request to .* failed"):
        dead.embed_texts(["x"])


def test_clip_without_transformers_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed: `import transformers` fails
    with pytest.raises(MissingExtraError, match=r"vlascore\[models\]"):
        ClipEmbedder().embed_texts(["pick the cube"])


def _tiny_clip(tmp_path):  # type: ignore[no-untyped-def]
    """A random-weight CLIP with a character-level tokenizer written to tmp_path: nothing is downloaded."""
    transformers = pytest.importorskip("transformers")
    chars = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"!": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 32,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": 0,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=8,
    )
    import torch

    torch.manual_seed(0)
    model = transformers.CLIPModel(config).eval()
    processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return ClipEmbedder(model="tiny-random-clip", components=(model, tokenizer, processor))


def test_clip_embedder_with_a_tiny_offline_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    if not available("transformers"):
        pytest.skip("transformers is not installed (extra `models`); the clip embedder needs it")
    emb = _tiny_clip(tmp_path)
    t = emb.embed_texts(["pick the cube", "push the cube"])
    i = emb.embed_images(np.stack([_scene(0, 48), _scene(1, 48)]))
    assert t.shape == (2, 8) and i.shape == (2, 8)
    np.testing.assert_allclose(_norms(t), 1.0, atol=1e-5)
    np.testing.assert_allclose(_norms(i), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb.embed_texts(["pick the cube"])[0], t[0], atol=1e-5)
    assert emb.version == "1+tiny-random-clip"
