"""A checkpoint that is not there says so in words about folders (not hub repo ids), and a hub id that cannot be
reached says how to work offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlascore.adapters.hf import read_config


@pytest.mark.parametrize("path", ["/ckpt/nope", "./nope", "~/nope-ckpt", "a/b/c"])
def test_a_missing_folder_is_named_as_a_folder(path: str) -> None:
    with pytest.raises(ValueError, match=f"no checkpoint at {path}: it is not a folder. Pass -M path="):
        read_config(path)


def test_a_folder_without_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no config.json"):
        read_config(str(tmp_path))


def test_an_unreachable_hub_id_suggests_offline_use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: nothing to find locally
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="set HF_HUB_OFFLINE=1 to use the local Hugging Face cache") as info:
        read_config("someone/some-vla")
    assert "pass -M path=FOLDER" in str(info.value)
