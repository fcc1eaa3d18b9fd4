"""`magma`: Microsoft's Magma-8B (microsoft/Magma-8B), in process, acting through OpenVLA-style action tokens.

Magma ships its own modelling and processing code (`auto_map`; `-M trust_remote_code=true`, the default). The
prompt is the checkpoint's Llama-3 chat template over a system turn "You are agent that can see, talk and act."
and the user turn `<image>\\nWhat action should the robot take to {instruction}?` (with `<image>` spelled
`<image_start><image><image_end>` when the config sets `mm_use_image_start_end`), as Magma's SimplerEnv agent
builds it. The observation is resized to 256x256 (bicubic) and processed one image at a time
(`processor(images=, texts=)`, pixel values and image sizes given a batch axis). Greedy generation ends with
the end-of-turn token; the last `dim` tokens before it are 256-bin action tokens at the tail of the
tokenizer's base vocabulary (`tokenizer.vocab_size`, the added special tokens excluded).

Magma-8B carries no action statistics: pass `-M norm_stats=FILE.json` (a `{dataset: {"action": ...}}` table,
e.g. OpenVLA's config.json, whose bridge_orig and fractal20220817_data entries Magma's SimplerEnv agent uses)
with `-M unnorm_key=`; a local checkpoint's dataset_statistics.json (Magma's LIBERO fine-tunes) is read when
present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlascore.adapters.preprocess import ImageSpec
from vlascore.adapters.token_policy import ActionTokenPolicy, read_stats_file
from vlascore.extras import require

SYSTEM_PROMPT = "You are agent that can see, talk and act."


class MagmaAdapter(ActionTokenPolicy):
    """Magma-8B (`-M path=` for a fine-tune). Options as ActionTokenPolicy; `max_new_tokens` defaults to 32
    (the action and its end token, with room for a stray leading token)."""

    name = "magma"
    default_path = "microsoft/Magma-8B"
    image_spec = ImageSpec(size=(256, 256), resample="bicubic")
    lowercase_instruction = False
    sticky_repeat = 10  # Magma's SimplerEnv agent holds a Google Robot gripper change for 10 steps
    needs = (
        "checkpoint microsoft/Magma-8B (17 GB download) with its remote code; action statistics via "
        "-M norm_stats=FILE.json; a CUDA GPU with >= 20 GB for bfloat16"
    )

    def stats_table(self, override: str | None) -> tuple[dict[str, Any], str]:
        table, where = super().stats_table(override)
        if table or override:
            return table, where
        local = Path(self.path) / "dataset_statistics.json"
        if local.is_file():
            return read_stats_file(str(local)), str(local)
        return {}, f"{self.path} (neither config.json `norm_stats` nor dataset_statistics.json)"

    def action_vocab_size(self) -> int:
        return int(self.tokenizer.vocab_size)

    def budget(self) -> int:
        return 32

    def prompt(self, instruction: str) -> str:
        task = self.instruction_text(instruction)
        turns = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"<image>\nWhat action should the robot take to {task}?"},
        ]
        text = str(self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))
        if getattr(self.model.config, "mm_use_image_start_end", False):
            text = text.replace("<image>", "<image_start><image><image_end>")
        return text

    def encode(self, images: list[Any], prompts: list[str]) -> dict[str, Any]:
        """Magma's processor takes one image and text; samples are stacked here (prompts padded on the left)."""
        torch = require("torch", "models", "in-process model adapters")
        samples = [
            dict(self.processor(images=image, texts=text, return_tensors="pt"))
            for image, text in zip(images, prompts, strict=True)
        ]
        shapes = {tuple(s["pixel_values"].shape) for s in samples}
        if len(shapes) > 1:
            raise ValueError(f"magma: images processed to different shapes {sorted(shapes)}; use -M batch=1")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        rows = [s["input_ids"].reshape(-1) for s in samples]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=rows[0].dtype)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :], mask[i, width - len(r) :] = r, 1
        pixels = torch.stack([s["pixel_values"] for s in samples])
        out = {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}
        if all("image_sizes" in s for s in samples):
            out["image_sizes"] = torch.stack([s["image_sizes"] for s in samples])
        return out
