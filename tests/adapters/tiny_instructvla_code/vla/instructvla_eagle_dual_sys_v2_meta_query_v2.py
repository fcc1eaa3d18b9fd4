"""Tiny stand-in for InstructVLA's `vla/instructvla_eagle_dual_sys_v2_meta_query_v2.py`, for offline tests.

Same entry points and signatures as the real module: `load_vla(model_id_or_path, cache_dir=None,
load_for_training=False, model_type="pretrained", **kwargs)` reading `<run>/config.json`,
`<run>/dataset_statistics.json` and `<run>/checkpoints/<name>.pt` (a {"model": {group: state_dict}} file), and
`InstructVLA.predict_action(image, instruction, unnorm_key=None, use_generate=False, cache_latent=False,
**kwargs) -> (actions, normalized_actions, meta_feature)` with the real post-processing: clip to [-1, 1], the
gripper thresholded to 0/1, q01/q99 un-normalisation under the mask. Stage-2 checkpoints with `use_generate`
answer first (regenerated every 20 calls, cached in `last_response`) and condition the actions on the answer.

The networks are a few random layers. `action_model.chunk_bias`, `head_scale` and `noise_scale` let a test
choose the normalised chunk; `language_model.answer_bias` forces the answer's words.
"""

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

DEFAULT_SYSTEM_MESSAGE = "You are a helpful assistant."
WORDS = [
    "<|im_end|>",
    "<new_token_0>",
    "the",
    "red",
    "cube",
    "is",
    "left",
    "right",
    "of",
    "green",
    "goal",
    "i",
    "will",
    "pick",
    "it",
    "up",
    "first",
    "then",
    "move",
    "to",
    "on",
    "a",
    "table",
    "robot",
    "what",
    "action",
    "should",
    "take",
    "?",
    "answer",
    "my",
    "question",
    ".",
]
STOP_WORDS = ("<|im_end|>", "<new_token_0>")
HIDDEN, IMAGE = 8, 32


class TinyTokenizer:
    def __init__(self, num_of_meta_query):
        self.new_tokens = [f"<new_token_{i}>" for i in range(num_of_meta_query)]
        self.words = WORDS + self.new_tokens[1:]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    def encode(self, text):
        return [self.index.get(w, len(w) % len(self.words)) for w in text.replace("?", " ?").split()]

    def decode(self, ids):
        return " ".join(self.words[i] for i in ids)


class TinyLanguageModel(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, HIDDEN)
        self.lm_head = nn.Linear(HIDDEN, vocab)
        self.answer_bias = nn.Parameter(torch.zeros(50, vocab))


class TinyEagle(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.vision_model = nn.Conv2d(3, HIDDEN, kernel_size=8, stride=8)
        self.mlp1 = nn.Linear(HIDDEN, HIDDEN)
        self.language_model = TinyLanguageModel(vocab)

    @property
    def device(self):
        return self.mlp1.weight.device

    def hidden(self, pixel_values, input_ids):
        image = self.mlp1(self.vision_model(pixel_values).flatten(2).mean(-1))
        return torch.tanh(image + self.language_model.embed_tokens(input_ids).mean(1))

    def generate(self, input_ids, pixel_values, max_new_tokens, stop_ids):
        ids, out = input_ids, []
        for step in range(max_new_tokens):
            logits = self.language_model.lm_head(self.hidden(pixel_values, ids)) + self.language_model.answer_bias[step]
            nxt = int(logits.float().argmax(-1)[0])
            out.append(nxt)
            ids = torch.cat([ids, ids.new_tensor([[nxt]])], dim=1)
            if nxt in stop_ids:
                break
        return out


class TinyActionModel(nn.Module):
    def __init__(self, future_action_window_size, action_dim):
        super().__init__()
        self.shape = (future_action_window_size + 1, action_dim)
        self.dino = nn.Conv2d(3, HIDDEN, kernel_size=8, stride=8)
        self.head = nn.Linear(2 * HIDDEN, self.shape[0] * action_dim)
        self.chunk_bias = nn.Parameter(torch.zeros(self.shape))
        self.register_buffer("head_scale", torch.tensor(1.0))
        self.register_buffer("noise_scale", torch.tensor(0.0))

    @staticmethod
    def default_dino_transform(image):
        arr = np.asarray(image.convert("RGB").resize((IMAGE, IMAGE)), dtype=np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1)

    def sampling(self, latent_action, pixel_values, num_inference_steps=10):
        # the real expert integrates a flow from Gaussian noise; here the noise enters once, scaled
        noise = torch.randn((1, *self.shape), device=latent_action.device)
        visual = self.dino(pixel_values["dino"]).flatten(2).mean(-1)
        out = self.head(torch.cat([visual, latent_action.mean(1)], dim=-1)).view(1, *self.shape)
        return self.chunk_bias + self.head_scale * torch.tanh(out) + self.noise_scale * noise


class InstructVLA(nn.Module):
    def __init__(
        self, norm_stats, stage="stage1", future_action_window_size=15, action_dim=7, num_of_meta_query=4, **kwargs
    ):
        super().__init__()
        self.tokenizer = TinyTokenizer(num_of_meta_query)
        self.vlm = TinyEagle(len(self.tokenizer))
        self.action_model = TinyActionModel(future_action_window_size, action_dim)
        self.norm_stats, self.stage = norm_stats, stage
        self.future_action_window_size = future_action_window_size
        self.last_response, self.run_index, self.latent = None, 0, None
        self.calls, self.generations = [], 0  # what predict_action was given, for tests

    def _inputs(self, image, prompt):
        text = " ".join(m["content"] for m in prompt)
        ids = torch.tensor([self.tokenizer.encode(text)], device=self.vlm.device)
        pixels = self.action_model.default_dino_transform(image)[None].to(self.vlm.device, torch.bfloat16)
        return ids, pixels

    @torch.inference_mode()
    def predict_action(self, image, instruction, unnorm_key=None, use_generate=False, cache_latent=False, **kwargs):
        autocast_dtype = torch.bfloat16
        question = f"What action should the robot take to {instruction}?"
        if use_generate and self.stage == "stage2":
            if self.last_response is None or self.run_index % 20 == 0:
                prompt = [
                    {"role": "system", "content": DEFAULT_SYSTEM_MESSAGE},
                    {"role": "user", "content": question + " First answer my question."},
                    {"role": "assistant", "content": ""},
                ]
                ids, pixels = self._inputs(image, prompt)
                stop = {self.tokenizer.index[w] for w in STOP_WORDS}
                out = self.vlm.generate(ids, pixels.to(autocast_dtype), max_new_tokens=50, stop_ids=stop)
                self.last_response = self.tokenizer.decode(out).replace("<new_token_0>", "")
                self.generations += 1
            user, assistant = question + " First answer my question.", self.last_response + " "
        else:
            user, assistant = question, ""
        assistant += "".join(self.tokenizer.new_tokens)
        prompt = [
            {"role": "system", "content": DEFAULT_SYSTEM_MESSAGE},
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
        self.calls.append(
            {
                "instruction": instruction,
                "user": user,
                "assistant": assistant,
                "size": image.size,
                "image": np.asarray(image),
                "unnorm_key": unnorm_key,
                "kwargs": kwargs,
            }
        )
        ids, pixels = self._inputs(image, prompt)
        if cache_latent is False or self.latent is None or self.run_index % 2 == 0:
            self.latent = self.vlm.hidden(pixels, ids)[:, None].repeat(1, len(self.tokenizer.new_tokens), 1)
        meta_feature = self.latent
        dino = dict(dino=self.action_model.default_dino_transform(image)[None].to(self.vlm.device))
        samples = self.action_model.sampling(latent_action=meta_feature.float(), pixel_values=dino)
        normalized_actions = samples[0].float().cpu().numpy()

        stats = self.get_action_stats(unnorm_key)
        mask = stats.get("mask", np.ones_like(stats["q01"], dtype=bool))
        high, low = np.array(stats["q99"]), np.array(stats["q01"])
        normalized_actions = np.clip(normalized_actions, -1, 1)
        normalized_actions[:, 6] = np.where(normalized_actions[:, 6] < 0.5, 0, 1)
        actions = np.where(mask, 0.5 * (normalized_actions + 1) * (high - low) + low, normalized_actions)
        self.run_index += 1
        return actions, normalized_actions, meta_feature

    @staticmethod
    def _check_unnorm_key(norm_stats, unnorm_key):
        if unnorm_key is None:
            assert len(norm_stats) == 1, f"please pass a `unnorm_key` from: {norm_stats.keys()}"
            unnorm_key = next(iter(norm_stats.keys()))
        assert unnorm_key in norm_stats, f"please choose from: {norm_stats.keys()}"
        return unnorm_key

    def get_action_stats(self, unnorm_key=None):
        return self.norm_stats[self._check_unnorm_key(self.norm_stats, unnorm_key)]["action"]


GROUPS = {
    "vision_model": lambda m: m.vlm.vision_model,
    "mlp1": lambda m: m.vlm.mlp1,
    "language_model": lambda m: m.vlm.language_model,
    "action_model": lambda m: m.action_model,
}


def load_vla(model_id_or_path, cache_dir=None, load_for_training=False, model_type="pretrained", **kwargs):
    if not os.path.isfile(model_id_or_path):
        raise ValueError(f"Couldn't find valid HF Hub Path `{model_id_or_path}` (this stand-in is offline)")
    checkpoint_pt = Path(model_id_or_path)
    assert checkpoint_pt.suffix == ".pt" and checkpoint_pt.parent.name == "checkpoints", "Invalid checkpoint!"
    run_dir = checkpoint_pt.parents[1]
    config_json, dataset_statistics_json = run_dir / "config.json", run_dir / "dataset_statistics.json"
    assert config_json.exists(), f"Missing `config.json` for `{run_dir = }`"
    assert dataset_statistics_json.exists(), f"Missing `dataset_statistics.json` for `{run_dir = }`"
    backbone = Path(__file__).resolve().parents[1] / "ckpt" / "Eagle2-2B"
    if not backbone.is_dir():
        raise OSError(f"{backbone} is not a local folder and is not a valid model identifier")
    norm_stats = json.loads(dataset_statistics_json.read_text())
    config = json.loads(config_json.read_text())
    vla = InstructVLA(
        norm_stats, stage=config.pop("stage"), num_of_meta_query=config.pop("num_of_meta_query", 4), **kwargs
    )
    state = torch.load(checkpoint_pt, map_location="cpu")["model"]
    for group, module in GROUPS.items():
        module(vla).load_state_dict(state[group])
    return vla
