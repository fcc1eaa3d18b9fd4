"""Tiny stand-in for SpatialVLA's `configuration_spatialvla.py` (remote code named in config.json's auto_map)."""

from transformers import PretrainedConfig


class SpatialVLAConfig(PretrainedConfig):
    model_type = "spatialvla"

    def __init__(
        self,
        vocab_size=512,
        hidden_size=16,
        image_size=224,
        patch_size=56,
        image_token_index=4,
        action_token_begin_idx=None,
        spatial_token_num=0,
        max_new_tokens=16,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.image_token_index = image_token_index
        self.action_token_begin_idx = action_token_begin_idx
        self.spatial_token_num = spatial_token_num
        self.max_new_tokens = max_new_tokens
        super().__init__(**kwargs)
