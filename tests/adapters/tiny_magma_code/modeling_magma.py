"""Tiny stand-in for Magma's `modeling_magma.py`: `MagmaForCausalLM` (what AutoModelForCausalLM resolves to)
taking pixel values with Magma's batch-of-crops layout (batch, crops, C, H, W) and `image_sizes`; underneath, a
tiny Llava model whose image placeholder tokens the fixture processor writes."""

from transformers import LlavaForConditionalGeneration

from .configuration_magma import MagmaConfig


class MagmaForCausalLM(LlavaForConditionalGeneration):
    config_class = MagmaConfig

    def forward(self, input_ids=None, pixel_values=None, image_sizes=None, **kwargs):
        if pixel_values is not None:
            sizes = None if image_sizes is None else tuple(image_sizes.shape)
            if pixel_values.dim() != 5 or sizes is None or sizes[:2] != tuple(pixel_values.shape[:2]):
                raise ValueError(
                    "Magma takes pixel_values (batch, crops, C, H, W) with image_sizes (batch, crops, 2); "
                    f"got {tuple(pixel_values.shape)} and {sizes}"
                )
            pixel_values = pixel_values.flatten(0, 1)
        return super().forward(input_ids=input_ids, pixel_values=pixel_values, **kwargs)
