"""A tiny Magma checkpoint built offline: config.json of model type `magma` whose `auto_map` names remote code
shipped in the directory (tiny_magma_code/: MagmaConfig, MagmaForCausalLM, MagmaProcessor, with the real class
names and call signatures), `mm_use_image_start_end`, a word-level tokenizer laid out like Llama-3's (a base
vocabulary whose last 256 words carry the action bins, then the added special tokens: `tokenizer.vocab_size`
excludes them) with a Llama-3-style chat template, and a tiny Llava model underneath (tiny_hf).

`reply` forces the greedy decode (tiny_hf.plant_reply): the prompt, which ends with the assistant header, is
answered with `reply` then `<|eot_id|>`. `steer=True` keeps the random model but lets it speak only action tokens.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tiny_hf import WORDS, plant_reply, tiny_llava
from tiny_openvla import steer_to_actions

CODE = Path(__file__).with_name("tiny_magma_code")
BINS = 256
IMAGE_SIZE = 32
SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<pad>",
    "<image>",
    "<image_start>",
    "<image_end>",
)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
AUTO_MAP = {"AutoConfig": "configuration_magma.MagmaConfig", "AutoModelForCausalLM": "modeling_magma.MagmaForCausalLM"}
BRIDGE = {
    "q01": [-0.02, -0.04, -0.03, -0.1, -0.1, -0.2, 0.0],
    "q99": [0.02, 0.04, 0.05, 0.1, 0.3, 0.2, 1.0],
    "mask": [True] * 6 + [False],
}
STATS = {"bridge_orig": {"action": BRIDGE}}


def magma_tokenizer() -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", *dict.fromkeys((*WORDS, "You", "are", "agent", "can", "see", "talk", "act", "What", "system"))]
    words += [f"<a{i}>" for i in range(BINS)]  # the least used words: where the action bins go
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|eot_id|>",
        bos_token="<|begin_of_text|>",
        chat_template=CHAT_TEMPLATE,
    )


def action_token(tokenizer: Any, bin_index: int) -> int:
    return int(tokenizer.vocab_size) - 1 - bin_index


def tiny_magma(
    path: Path,
    *,
    reply: list[int] | None = None,
    steer: bool = False,
    seed: int = 0,
    with_stats: bool = False,
    mm_use_image_start_end: bool = True,
) -> Path:
    from transformers import CLIPImageProcessorPil

    path = Path(path)
    tokenizer = magma_tokenizer()
    tiny_llava(path, tokenizer=tokenizer, extra_vocab=0, image_size=IMAGE_SIZE, seed=seed)
    if reply is not None:
        plant_reply(path, tokenizer.convert_tokens_to_ids("<|end_header_id|>"), reply)
    elif steer:
        steer_to_actions(path, tokenizer.vocab_size - (BINS - 1), tokenizer.vocab_size - 1)
    for src in CODE.glob("*.py"):
        shutil.copy(src, path / src.name)
    config = json.loads((path / "config.json").read_text())
    config.update(
        model_type="magma",
        architectures=["MagmaForCausalLM"],
        auto_map=AUTO_MAP,
        mm_use_image_start_end=mm_use_image_start_end,
    )
    resave_as_magma(path, config)
    tokenizer.save_pretrained(path)
    square = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE}, crop_size=square).save_pretrained(path)
    (path / "processor_config.json").write_text(
        json.dumps(
            {
                "auto_map": {"AutoProcessor": "processing_magma.MagmaProcessor"},
                "processor_class": "MagmaProcessor",
                "num_image_tokens": (IMAGE_SIZE // (IMAGE_SIZE // 4)) ** 2,
            },
            indent=2,
        )
    )
    if with_stats:
        (path / "dataset_statistics.json").write_text(json.dumps(STATS))
    return path


def resave_as_magma(path: Path, config: dict[str, Any]) -> None:
    """Re-save the tiny Llava weights through the remote MagmaForCausalLM class, so the checkpoint's weight names
    are the ones that class loads (transformers renames Llava's weights by model type)."""
    from transformers import LlavaForConditionalGeneration
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    llava = LlavaForConditionalGeneration.from_pretrained(path)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    config_cls = get_class_from_dynamic_module(AUTO_MAP["AutoConfig"], str(path))
    model_cls = get_class_from_dynamic_module(AUTO_MAP["AutoModelForCausalLM"], str(path))
    magma = model_cls(config_cls.from_pretrained(path))
    magma.load_state_dict(llava.state_dict())
    magma.save_pretrained(path)
    (path / "config.json").write_text(json.dumps(config, indent=2))
