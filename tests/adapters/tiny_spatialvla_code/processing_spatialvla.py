"""Tiny stand-in for SpatialVLA's `processing_spatialvla.py`: the SpatialVLAProcessor call signature
(`images`, `text`, `unnorm_key`, `return_tensors`, image kwargs such as `do_normalize`), `decode_actions` reading
row 0 of the generated ids, and the statistics / bins / chunk settings that live in processor_config.json.
Every call is appended to `calls` so tests can see what the adapter sent."""

import numpy as np
import torch
from transformers import ProcessorMixin
from transformers.feature_extraction_utils import BatchFeature

from .action_tokenizer import SpatialActionTokenizer

IMAGE_TOKEN = "<image>"


class SpatialVLAProcessor(ProcessorMixin):
    attributes = ["image_processor", "tokenizer"]

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template=None,
        statistics=None,
        bin_policy=None,
        intrinsic_config=None,
        action_config=None,
        num_obs_steps=1,
        obs_delta=1,
        action_chunk_size=1,
        min_sigma=0.0,
        **kwargs,
    ):
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        self.statistics = statistics or {}
        self.bin_policy = bin_policy
        self.intrinsic_config = intrinsic_config
        self.action_config = action_config
        self.num_obs_steps = num_obs_steps
        self.obs_delta = obs_delta
        self.action_chunk_size = action_chunk_size
        self.min_sigma = min_sigma
        self.image_seq_length = 1
        self.dataset_intrinsics = {k: torch.tensor(v["intrinsic"]).float() for k, v in intrinsic_config.items()}
        self.action_tokenizer = SpatialActionTokenizer(tokenizer, action_config["num_bins"], bin_policy)
        self.calls = []

    def __call__(self, images=None, text=None, unnorm_key=None, suffix_actions=None, **kwargs):
        images = images if isinstance(images, list) else [images]
        prompts = [text] if isinstance(text, str) else list(text)
        image_kwargs = {k: kwargs.pop(k) for k in ("do_normalize", "do_resize", "do_rescale") if k in kwargs}
        self.calls.append(
            {
                "text": prompts,
                "sizes": [im.size for im in images],
                "unnorm_key": unnorm_key,
                "images": [np.asarray(im) for im in images],
                **image_kwargs,
            }
        )
        strings = [IMAGE_TOKEN * len(images) + self.tokenizer.bos_token + p + "\n" for p in prompts]
        pixel_values = self.image_processor(images, return_tensors="pt", **image_kwargs)["pixel_values"]
        inputs = self.tokenizer(strings, return_tensors=kwargs.get("return_tensors", "pt"), add_special_tokens=False)
        key = unnorm_key if unnorm_key in self.dataset_intrinsics else "default"
        return BatchFeature(data={**inputs, "pixel_values": pixel_values, "intrinsic": self.dataset_intrinsics[key]})

    def decode_actions(self, generation_outputs, unnorm_key=None):
        n = 3 * self.action_chunk_size
        ids = generation_outputs[0, :n].detach().cpu().long().numpy()
        assert ids[-1] != self.tokenizer.eos_token_id, "actions contain EOS token, check the truncation settings"
        ids = np.concatenate([ids, np.zeros(n - len(ids), dtype=np.int64)]).reshape(-1, 3)
        normalized = self.action_tokenizer.decode_token_ids_to_actions(ids)
        if unnorm_key is None:
            unnorm_key = next(iter(self.statistics))
        stats = self.statistics[unnorm_key]["action"]
        low, high = np.asarray(stats["q01"]), np.asarray(stats["q99"])
        mask = np.asarray(stats.get("mask", np.ones(len(low))), dtype=bool)
        actions = np.where(mask, 0.5 * (normalized + 1) * (high - low) + low, normalized)
        return {"actions": actions, "action_ids": ids}
