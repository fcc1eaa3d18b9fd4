"""Tiny OpenVLA / ECoT checkpoints built offline: a tiny Llava model (tiny_hf) whose config.json carries OpenVLA's
`norm_stats`, `pad_to_multiple_of` and `n_action_bins`, a text vocabulary padded like OpenVLA's (the action bins
sit `pad_to` ids before its end), a word-level tokenizer that adds `<s>`, knows the empty piece '▁' and ECoT's
reasoning tags as single tokens, and a PrismaticProcessor stand-in loaded as remote code (tiny_openvla_code/).

`after` + `reply` force the greedy decode (tiny_hf.plant_reply): a prompt ending in token `after` is answered
with `reply` then `</s>`. `steer=True` instead keeps the random model but lets it speak only action tokens, so its
answers depend on image and prompt (batch-vs-single tests).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from tiny_hf import WORDS, build_tokenizer, plant_reply, tiny_llava

from vlascore.backends.base import Observation

CODE = Path(__file__).with_name("tiny_openvla_code")
EMPTY = "\u2581"
ECOT_TAGS = (
    "TASK:",
    "PLAN:",
    "VISIBLE OBJECTS:",
    "SUBTASK REASONING:",
    "SUBTASK:",
    "MOVE REASONING:",
    "MOVE:",
    "GRIPPER POSITION:",
    "ACTION:",
)
PROMPT_WORDS = (
    "In",
    "Out",
    "What",
    "A",
    "USER",
    "ASSISTANT",
    "chat",
    "between",
    "curious",
    "user",
    "artificial",
    "intelligence",
    "assistant",
    "gives",
    "helpful",
    "detailed",
    "polite",
    "answers",
    "questions",
    "s",
)
PAD_TO = 64
BINS = 256
IMAGE_SIZE = 32
BRIDGE = {
    "q01": [-0.02, -0.04, -0.03, -0.1, -0.1, -0.2, 0.0],
    "q99": [0.02, 0.04, 0.05, 0.1, 0.3, 0.2, 1.0],
    "mask": [True] * 6 + [False],
}
FRACTAL = {
    "q01": [-0.2, -0.2, -0.2, -0.5, -0.5, -0.5, 0.0],
    "q99": [0.2, 0.2, 0.2, 0.5, 0.5, 0.5, 1.0],
    "mask": [True] * 6 + [False],
}
NORM_STATS = {"bridge_orig": {"action": BRIDGE}, "fractal20220817_data": {"action": FRACTAL}}


def openvla_tokenizer() -> Any:
    from tokenizers import processors

    tokenizer = build_tokenizer(words=(*WORDS, *PROMPT_WORDS, EMPTY))
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]
    )
    tokenizer.add_tokens(list(ECOT_TAGS))
    return tokenizer


def action_vocab(tokenizer: Any) -> int:
    """OpenVLA's `text_config.vocab_size - pad_to_multiple_of` for checkpoints built here."""
    return len(tokenizer) + BINS


def action_token(tokenizer: Any, bin_index: int) -> int:
    """Token id of bin `bin_index` (0 = the lowest of the 255 bins), counted back from the end of the vocabulary."""
    return action_vocab(tokenizer) - 1 - bin_index


def tiny_openvla(
    path: Path,
    *,
    after: str | None = None,
    reply: list[int] | None = None,
    steer: bool = False,
    norm_stats: dict[str, Any] | None = None,
    seed: int = 0,
) -> Path:
    from transformers import CLIPImageProcessorPil

    path = Path(path)
    tokenizer = openvla_tokenizer()
    config = {
        "norm_stats": NORM_STATS if norm_stats is None else norm_stats,
        "pad_to_multiple_of": PAD_TO,
        "n_action_bins": BINS,
    }
    tiny_llava(
        path, tokenizer=tokenizer, extra_vocab=BINS + PAD_TO, image_size=IMAGE_SIZE, seed=seed, config_extra=config
    )
    for src in CODE.glob("*.py"):
        shutil.copy(src, path / src.name)
    square = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE}, crop_size=square).save_pretrained(path)
    patches = (IMAGE_SIZE // (IMAGE_SIZE // 4)) ** 2
    (path / "processor_config.json").write_text(
        json.dumps(
            {
                "auto_map": {"AutoProcessor": "processing_prismatic.PrismaticProcessor"},
                "processor_class": "PrismaticProcessor",
                "num_image_tokens": patches,
            },
            indent=2,
        )
    )
    if reply is not None:
        plant_reply(path, tokenizer.convert_tokens_to_ids(after or EMPTY), reply)
    elif steer:
        steer_to_actions(path, action_vocab(tokenizer) - (BINS - 1), action_vocab(tokenizer) - 1)
    return path


def steer_to_actions(path: Path, low: int, high: int, gain: float = 50.0) -> None:
    """Keep the random model but zero its LM head outside token ids low..high (and amplify attention), so greedy
    decoding speaks only action tokens that still depend on image and prompt."""
    import torch
    from transformers import LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(path).eval()
    head = model.get_output_embeddings().weight
    with torch.no_grad():
        keep = head[low : high + 1].clone() * gain
        head.zero_()
        head[low : high + 1] = keep
        for layer in model.model.language_model.layers:
            layer.self_attn.o_proj.weight.mul_(gain * 10)
    model.save_pretrained(path)


# --- helpers for the tests of the action-token adapters ---------------------------------------------------------
def centre(bin_index: int) -> float:
    """Bin centre by hand: 256 edges evenly over [-1, 1], so bin i spans [-1 + 2i/255, -1 + 2(i+1)/255]."""
    return -1.0 + (2 * bin_index + 1) / 255


def unnormalise(stats: dict[str, Any], values: list[float]) -> np.ndarray:
    """OpenVLA's bounds_q99 rule by hand: [-1, 1] -> [q01, q99] where the mask is set, else as predicted."""
    rows = zip(values, stats["q01"], stats["q99"], stats["mask"], strict=True)
    return np.array([0.5 * (v + 1) * (hi - lo) + lo if m else v for v, lo, hi, m in rows])


def obs(image: np.ndarray | None = None) -> Observation:
    """A camera-only observation (a black 64x48 frame by default)."""
    return Observation(image=np.zeros((48, 64, 3), np.uint8) if image is None else image, proprio={}, privileged=None)


def spy_generate(a: Any) -> list[dict[str, Any]]:
    """Record the keyword arguments of every `generate` call of adapter `a`'s model."""
    calls: list[dict[str, Any]] = []
    real = a.model.generate

    def generate(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    a.model.generate = generate
    return calls
