from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vlascore.registry import Registry, UnknownPluginError


def test_lazy_entries_import_on_first_use() -> None:
    reg: Registry[object] = Registry("thing")
    reg.register("join", "os.path:join")
    assert reg.names() == ["join"]
    import os.path

    assert reg.get("join") is os.path.join


def test_unknown_name_suggests_close_matches() -> None:
    reg: Registry[object] = Registry("adapter")
    reg.register("scripted", "os:getcwd")
    with pytest.raises(UnknownPluginError, match="Did you mean 'scripted'"):
        reg.get("scriptd")


def test_entry_point_plugins_are_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real installed distribution's metadata on sys.path, as pip would leave it.
    dist = tmp_path / "thirdparty_vla-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-vla\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vlascore.test_plugins]\nmyvla = thirdparty_vla_mod:Policy\n")
    (tmp_path / "thirdparty_vla_mod.py").write_text("class Policy:\n    tag = 'third-party'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[type] = Registry("adapter", "vlascore.test_plugins")
    assert "myvla" in reg.names()
    assert reg.get("myvla").tag == "third-party"
    sys.modules.pop("thirdparty_vla_mod", None)
