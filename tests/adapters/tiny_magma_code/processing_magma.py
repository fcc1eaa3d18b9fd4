"""Tiny stand-in for Magma's `processing_magma.py`: MagmaProcessor's call signature (`texts`, `images`,
`return_tensors`), one image in, pixel values (crops, C, H, W) and image sizes (crops, 2) out without a batch axis
(Magma's agents add it). `<image>` in the text becomes the tiny Llava model's placeholder tokens. Every call is
appended to `calls` so tests can see what the adapter sent."""

import numpy as np
import torch
from transformers import ProcessorMixin
from transformers.feature_extraction_utils import BatchFeature

IMAGE_TOKEN = "<image>"


class MagmaProcessor(ProcessorMixin):
    attributes = ["image_processor", "tokenizer"]

    def __init__(self, image_processor=None, tokenizer=None, num_image_tokens=16, **kwargs):
        super().__init__(image_processor, tokenizer)
        self.num_image_tokens = num_image_tokens
        self.calls = []

    def __call__(self, texts=None, images=None, padding=False, truncation=None, max_length=None, return_tensors="pt"):
        if isinstance(images, list) or not isinstance(texts, str):
            raise ValueError("this MagmaProcessor stand-in takes one image and one text, as Magma's agents call it")
        self.calls.append({"text": texts, "size": images.size, "image": np.asarray(images)})
        pixel_values = self.image_processor([images], return_tensors=return_tensors)["pixel_values"]
        text = texts.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.num_image_tokens)
        inputs = self.tokenizer(
            text,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            return_tensors=return_tensors,
            add_special_tokens=False,
        )
        sizes = torch.tensor([[images.size[1], images.size[0]]])
        return BatchFeature(data={**inputs, "pixel_values": pixel_values, "image_sizes": sizes})
