"""Fixtures of the QA tests (imported by them: a conftest.py here would shadow tests/conftest.py, which other tests
import as `conftest`): local benchmark copies (qa_data.py), no hub access, the tiny VLM builders on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "adapters"))  # tiny_hf: tiny random-weight VLMs

from vlascore.extras import available  # noqa: E402

needs_lmms = pytest.mark.skipif(not available("lmms_eval"), reason="lmms-eval is not installed (the qa extra)")


@pytest.fixture(name="offline_hf", autouse=True)
def offline_hf_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub access, and the datasets cache in the test's folder."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture(name="bench_data", scope="session")
def bench_data_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qa_data import write_benchmarks

    return write_benchmarks(tmp_path_factory.mktemp("qa-data"))
