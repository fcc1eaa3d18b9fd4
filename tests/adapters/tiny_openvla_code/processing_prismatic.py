"""Tiny stand-in for OpenVLA's `processing_prismatic.py`: the PrismaticProcessor class name and call signature
(`text`, `images`, `padding`, `truncation`, `max_length`, `return_tensors`) returning input_ids, attention_mask
and pixel_values. The real processor tokenizes the prompt as it is and the model splices the image patches in
right after `<s>`; this one writes the tiny Llava model's image placeholder tokens there instead, so the very
prompt OpenVLA sees drives the fixture. Every call is appended to `calls` so tests can see what the adapter sent."""

import numpy as np
from transformers import ProcessorMixin
from transformers.feature_extraction_utils import BatchFeature

IMAGE_TOKEN = "<image>"


class PrismaticProcessor(ProcessorMixin):
    attributes = ["image_processor", "tokenizer"]

    def __init__(self, image_processor=None, tokenizer=None, num_image_tokens=16, **kwargs):
        super().__init__(image_processor, tokenizer)
        self.num_image_tokens = num_image_tokens
        self.calls = []

    def __call__(self, text, images, padding=False, truncation=None, max_length=None, return_tensors="pt"):
        images = images if isinstance(images, list) else [images]
        prompts = [text] if isinstance(text, str) else list(text)
        self.calls.append(
            {
                "text": prompts,
                "sizes": [im.size for im in images],
                "padding": padding,
                "images": [np.asarray(im) for im in images],
            }
        )
        pixel_values = self.image_processor(images, return_tensors=return_tensors)["pixel_values"]
        marked = [IMAGE_TOKEN * self.num_image_tokens + p for p in prompts]
        inputs = self.tokenizer(
            marked, padding=padding, truncation=truncation, max_length=max_length, return_tensors=return_tensors
        )
        return BatchFeature(data={**inputs, "pixel_values": pixel_values})
