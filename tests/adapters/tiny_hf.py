"""Tiny random-weight Hugging Face checkpoints built offline, for adapter tests (no hub access, ~1 s each).

A word-level tokenizer over a small vocabulary plus a Llava-style VLM (a one-layer CLIP vision tower and a
one-layer Llama) saved with `save_pretrained`, so adapters load them through the same `from_pretrained`
code path as real checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = (
    "in out what action should the robot take to pick up lift red cube push pull stack place sphere ball bin "
    "green blue goal target onto on of and a an it then move reach grasp release plan subtask reasoning "
    "intention task move_to gripper open close left right forward back down : ? . , ; { } [ ] \" ' - _ = "
    "0 1 2 3 4 5 6 7 8 9 user assistant system"
).split()
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>", "<image>")


def build_tokenizer(
    words: tuple[str, ...] | list[str] = WORDS, specials: tuple[str, ...] = SPECIALS, **kwargs: Any
) -> Any:
    """A PreTrainedTokenizerFast: whitespace/punctuation split, one id per known word, `<unk>` otherwise."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for w in (*specials, *words):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.decoder = decoders.WordPiece(prefix="##")  # joins with spaces
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>", **kwargs
    )


def tiny_llava(
    path: Path,
    *,
    tokenizer: Any | None = None,
    extra_vocab: int = 256,
    image_size: int = 32,
    seed: int = 0,
    config_extra: dict[str, Any] | None = None,
    chat_template: str | None = None,
) -> Path:
    """Save a random Llava-style VLM + processor to `path`; the text vocabulary gets `extra_vocab` unused ids at
    its tail (where action-token models put their bins). `config_extra` is merged into config.json."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = tokenizer or build_tokenizer()
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=image_size // 4,
        projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer) + extra_vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        vision_feature_layer=-1,
        image_token_index=image_token,
        **(config_extra or {}),
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    square = {"height": image_size, "width": image_size}
    images = CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size=square)
    processor = LlavaProcessor(
        image_processor=images,
        tokenizer=tokenizer,
        patch_size=image_size // 4,
        vision_feature_select_strategy="full",
        chat_template=chat_template,
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return Path(path)


def plant_reply(path: Path, after: int, reply: list[int], strength: float = 30.0) -> Path:
    """Steer the tiny_llava checkpoint at `path` so greedy decoding continues a prompt ending in token `after`
    with `reply` then `</s>`, whatever the image and the rest of the prompt; the checkpoint is saved in place.

    The decoder's attention and MLP outputs are zeroed, so each position's logits depend on its own token only;
    the chain's tokens (`after`, then `reply`: all distinct, at most the hidden size) get orthogonal one-hot
    embeddings, and the LM head maps each to its successor. A 1-state-per-token chain, not a language model."""
    import torch
    from transformers import LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(path).eval()
    chain = [int(after), *map(int, reply)]
    hidden = model.config.text_config.hidden_size
    if len(set(chain)) != len(chain) or len(chain) > hidden:
        raise ValueError(f"plant_reply needs at most {hidden} distinct tokens (after + reply), got {chain}")
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if embed.data_ptr() == head.data_ptr():
        raise ValueError("plant_reply needs untied input and output embeddings")
    nxt = [*chain[1:], int(model.config.text_config.eos_token_id)]
    with torch.no_grad():
        for layer in model.model.language_model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.language_model.norm.weight.fill_(1.0)
        head.zero_()
        for k, (token, successor) in enumerate(zip(chain, nxt, strict=True)):
            embed[token] = torch.nn.functional.one_hot(torch.tensor(k), hidden).to(embed.dtype)
            head[successor, k] = strength
    model.save_pretrained(path)
    return Path(path)
