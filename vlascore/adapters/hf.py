"""Loading Hugging Face checkpoints for in-process adapters: one code path for hub ids and local directories.

Checkpoints with their own modelling code (OpenVLA, SpatialVLA, Magma...) name it in `config.json`'s
`auto_map`; the key they register under changed across transformers versions (AutoModelForVision2Seq was
removed in 5.x), so the class is resolved from whichever model entry the map has.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any

from vlascore.adapters.base import Adapter, PolicyStep
from vlascore.adapters.device import select_device, select_dtype
from vlascore.adapters.preprocess import ImageSpec, preprocess_image
from vlascore.backends.base import Observation
from vlascore.extras import require

# auto_map keys that name a model class able to generate, most specific first
MODEL_AUTO_KEYS = ("AutoModelForVision2Seq", "AutoModelForImageTextToText", "AutoModelForCausalLM", "AutoModel")


def transformers_module() -> Any:
    return require("transformers", "models", "in-process Hugging Face adapters")


def looks_local(path: str) -> bool:
    """Whether `path` names a folder rather than a hub id (`org/name`): absolute, ~, ./ or ../, or there."""
    return path.startswith(("/", "~", "./", "../", ".\\")) or Path(path).expanduser().exists() or path.count("/") > 1


def read_config(path: str, revision: str | None = None) -> dict[str, Any]:
    """config.json of a local directory or a hub id (from the local cache or the hub)."""
    local = Path(path).expanduser() / "config.json"
    if local.is_file():
        return dict(json.loads(local.read_text()))
    if looks_local(path):  # never ask the hub for a folder name: its error would talk about repo ids
        what = "is not a folder" if not Path(path).expanduser().is_dir() else "has no config.json"
        raise ValueError(
            f"no checkpoint at {path}: it {what}. Pass -M path= a checkpoint folder (with "
            "config.json), or a hub id such as openvla/openvla-7b"
        )
    hub = require("huggingface_hub", "models", "loading checkpoints from the Hugging Face hub")
    try:
        return dict(json.loads(Path(hub.hf_hub_download(path, "config.json", revision=revision)).read_text()))
    except Exception as exc:  # noqa: BLE001 - hub errors are many; the message is what matters
        offline = isinstance(exc, OSError | TimeoutError) or "connect" in str(exc).lower() or "offline" in str(exc)
        hint = (
            " Without network: download it elsewhere and pass -M path=FOLDER, or set HF_HUB_OFFLINE=1 to use "
            "the local Hugging Face cache without retrying the hub"
            if offline
            else ""
        )
        raise ValueError(
            f"cannot read config.json of {path!r}: {type(exc).__name__}: {str(exc)[:300]}. Pass a local checkpoint "
            f"directory or a hub id you can download (huggingface-cli login for gated models).{hint}"
        ) from exc


def load_processor(path: str, *, revision: str | None = None, trust_remote_code: bool = True, **kwargs: Any) -> Any:
    tf = transformers_module()
    return tf.AutoProcessor.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code, **kwargs)


def model_class(
    path: str,
    config: dict[str, Any],
    *,
    revision: str | None,
    trust_remote_code: bool,
    default: str = "AutoModelForImageTextToText",
) -> Any:
    """The class that loads `path`: its remote code when `auto_map` names one, else a transformers Auto class."""
    tf = transformers_module()
    auto_map = config.get("auto_map") or {}
    ref = next((auto_map[k] for k in MODEL_AUTO_KEYS if k in auto_map), None)
    if ref is None:
        return getattr(tf, default)
    if not trust_remote_code:
        raise ValueError(f"{path} ships its own modelling code ({ref}); loading it needs -M trust_remote_code=true")
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    return get_class_from_dynamic_module(ref, path, revision=revision)


def load_model(
    path: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    revision: str | None = None,
    trust_remote_code: bool = True,
    default_class: str = "AutoModelForImageTextToText",
    **kwargs: Any,
) -> tuple[Any, str, Any]:
    """(model in eval mode on its device, device name, torch dtype)."""
    tf = transformers_module()
    dev = select_device(device)
    torch_dtype = select_dtype(dtype, dev)
    cls = model_class(
        path, read_config(path, revision), revision=revision, trust_remote_code=trust_remote_code, default=default_class
    )
    dtype_arg = "dtype" if int(tf.__version__.split(".")[0]) >= 5 else "torch_dtype"  # renamed in transformers 5
    model = cls.from_pretrained(
        path, revision=revision, trust_remote_code=trust_remote_code, **{dtype_arg: torch_dtype}, **kwargs
    )
    return model.to(dev).eval(), dev, torch_dtype


def stop_token_ids(model: Any, tokenizer: Any, *extra: int | None) -> set[int]:
    """Ids that end a reply: the generation config's eos id(s), the tokenizer's eos, and any `extra`."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    return {int(i) for i in [*ids, tokenizer.eos_token_id, *extra] if i is not None}


def new_tokens(sequences: Any, prompt_ids: Any, stops: set[int]) -> list[list[int]]:
    """Each row's generated ids up to its first stop id. Native transformers models return prompt + new tokens;
    some remote code returns only the new ones, so the prompt is cut only when it is there."""
    torch = require("torch", "models", "in-process model adapters")
    width = prompt_ids.shape[1]
    if sequences.shape[1] >= width and torch.equal(sequences[:, :width], prompt_ids):
        sequences = sequences[:, width:]
    rows = []
    for row in sequences.tolist():
        cut = next((k for k, t in enumerate(row) if t in stops), len(row))
        rows.append(row[:cut])
    return rows


class HFAdapter(Adapter):
    """Shared options and the batched call path of in-process Hugging Face adapters.

    Options (all `-M key=value`): `path` (hub id or local checkpoint directory; default the reference
    checkpoint), `device` (auto, cpu, cuda, cuda:N, mps), `dtype` (auto, float32, bfloat16, float16),
    `revision`, `trust_remote_code`, `center_crop` (fraction of the area; overrides the declared preprocessing),
    `execute` (actions of a chunk to run before the next call). Subclasses add their own and implement `load`
    and `predict`.
    """

    extras = ("models",)
    default_path: str = ""
    """Hub id of the reference checkpoint, used when no `path` is given."""
    image_spec: ImageSpec = ImageSpec()
    """Preprocessing the checkpoint expects before its processor."""

    def __init__(
        self,
        path: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        revision: str | None = None,
        trust_remote_code: bool = True,
        center_crop: float | None = None,
        execute: int | None = None,
        **options: Any,
    ) -> None:
        path = str(path or self.default_path)
        if not path:
            raise ValueError(f"adapter {self.name!r} needs a checkpoint: -M path=HUB_ID_OR_DIR")
        super().__init__(
            path=path,
            device=device,
            dtype=dtype,
            revision=revision,
            trust_remote_code=trust_remote_code,
            center_crop=center_crop,
            execute=execute,
            **options,
        )
        self.path, self.revision, self.trust_remote_code = path, revision, bool(trust_remote_code)
        if center_crop is not None:
            self.image_spec = self.image_spec.model_copy(update={"center_crop": float(center_crop)})
        if execute is not None:
            self.execute_steps = int(execute)
        self.device, self.dtype = "cpu", None
        self.load(device=device, dtype=dtype, **options)

    @abstractmethod
    def load(self, *, device: str, dtype: str, **options: Any) -> None:
        """Load processor and model (set `self.device` and `self.dtype`); unknown options raise TypeError."""

    @abstractmethod
    def predict(self, images: list[Any], instructions: list[str]) -> list[PolicyStep]:
        """One batched forward: preprocessed PIL images and instructions -> one PolicyStep each."""

    def images(self, observations: list[Observation]) -> list[Any]:
        missing = [o.step for o in observations if o.image is None]
        if missing:
            raise ValueError(f"adapter {self.name!r} needs camera images; the task gives none (steps {missing})")
        return [preprocess_image(o.image, self.image_spec) for o in observations if o.image is not None]

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return self.act_batch([obs], [instruction])[0]

    def act_batch(self, observations: list[Observation], instructions: list[str]) -> list[PolicyStep]:
        return self.predict(self.images(observations), instructions)

    def shared_state(self) -> list[Any]:
        """The model, processor and tokenizer, and any other torch module or loaded Hugging Face object held (a fork
        must never copy weights)."""
        heavy = ("Module", "PreTrainedTokenizerBase", "ProcessorMixin", "ImageProcessingMixin")
        return [
            value
            for name, value in vars(self).items()
            if name in ("model", "processor", "tokenizer") or any(k.__name__ in heavy for k in type(value).__mro__)
        ]

    def info(self) -> dict[str, Any]:
        dtype = str(self.dtype).removeprefix("torch.")
        return {
            **super().info(),
            "path": self.path,
            "revision": self.revision,
            "device": self.device,
            "dtype": dtype,
            "image": self.image_spec.model_dump(mode="json"),
        }
