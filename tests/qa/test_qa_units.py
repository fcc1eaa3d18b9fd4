"""The QA pieces without an lmms-eval run: benchmarks and data sources, score units, summaries, MM-Vet grading
against a local OpenAI-compatible server, the scripted QA model, the overlay tasks and the lmms-eval plugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from qa_data import write_benchmarks
from qa_kit import bench_data_fixture, needs_lmms, offline_hf_fixture  # noqa: F401 - fixtures
from typer.testing import CliRunner

from vlascore.adapters import ADAPTERS, NoVLMSideError, Question
from vlascore.cli import app
from vlascore.judging.endpoint import Endpoint
from vlascore.judging.mockserver import MockOpenAI, MockReply
from vlascore.qa.benchmarks import data_source, load_benchmarks, resolve
from vlascore.qa.run import result_from_raw
from vlascore.qa.summary import SummaryDef, summarise

runner = CliRunner()


def test_benchmarks_resolve_in_the_papers_order_and_unknown_names_are_refused() -> None:
    assert [b.name for b in resolve("all")] == [
        "mmmu",
        "mmvet",
        "mmstar",
        "ocrbench",
        "mmbench",
        "textvqa",
        "infovqa",
        "docvqa",
    ]
    assert [b.name for b in resolve("docvqa, MMMU,docvqa")] == ["docvqa", "mmmu"]
    with pytest.raises(ValueError, match="unknown benchmark.*textvq.*Did you mean 'textvqa'"):
        resolve("textvq")
    ocr = load_benchmarks().benchmarks["ocrbench"]
    assert (ocr.unit, ocr.mm_divisor) == ("/1000", 10.0)


def test_data_sources_local_parquet_save_to_disk_hub_and_missing(tmp_path: Path) -> None:
    import datasets

    bench = load_benchmarks().benchmarks["docvqa"]
    assert data_source(bench, None).model_dump(exclude={"files", "fingerprint"}) == {
        "kind": "hub",
        "path": "lmms-lab-encoder/DocVQA",
        "config": "DocVQA",
        "split": "validation",
    }
    assert data_source(bench, "someone/DocVQA-mirror").kind == "hub"
    with pytest.raises(ValueError, match="docvqa: data path ./nowhere does not exist"):
        data_source(bench, "./nowhere")

    # A hub-snapshot layout with two configs and two splits: the config's folder and the split's files are picked.
    write_benchmarks(tmp_path / "raw", only=["docvqa"])
    one = tmp_path / "raw" / "docvqa" / "validation-00000-of-00001.parquet"
    snap = tmp_path / "snapshot"
    for config in ("DocVQA", "InfographicVQA"):
        for split in ("validation", "test"):
            (snap / config).mkdir(parents=True, exist_ok=True)
            (snap / config / f"{split}-00000-of-00001.parquet").write_bytes(one.read_bytes())
    source = data_source(bench, snap)
    assert source.kind == "parquet" and source.files == [str(snap / "DocVQA" / "validation-00000-of-00001.parquet")]
    assert source.fingerprint and source.fingerprint == data_source(bench, snap).fingerprint
    (snap / "DocVQA" / "validation-00000-of-00001.parquet").write_bytes(b"changed" + one.read_bytes()[7:])
    assert data_source(bench, snap).fingerprint != source.fingerprint

    disk = tmp_path / "disk"
    datasets.DatasetDict({"validation": datasets.Dataset.from_parquet(str(one))}).save_to_disk(str(disk))
    assert data_source(bench, disk).kind == "disk"
    stripped = datasets.Dataset.from_parquet(str(one)).remove_columns("answers")
    datasets.DatasetDict({"validation": stripped}).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="docvqa: the data at .* lacks the column\\(s\\) answers"):
        data_source(bench, tmp_path / "bad")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no parquet files"):
        data_source(bench, tmp_path / "empty")


def _base(name: str) -> dict[str, Any]:
    b = load_benchmarks().benchmarks[name]
    return {
        "benchmark": name,
        "title": b.title,
        "unit": b.unit,
        "lmms_task": b.lmms_task,
        "metric": b.metric,
        "model": "m",
        "data": data_source(b, None),
        "key": "k",
    }


def test_scores_are_read_in_each_benchmarks_unit() -> None:
    bench = load_benchmarks().benchmarks
    samples = [{"doc_id": i, "prediction": "x", "metric": {"score": s}} for i, s in enumerate([1, 0, 1, 1, 0])]
    # OCRBench: lmms-eval returns (correct answers) / 1000 whatever the number of questions: 3/1000 for 3 of 5.
    r, rows = result_from_raw(
        bench["ocrbench"], {"status": "ok", "value": 0.003, "samples": samples}, _base("ocrbench")
    )
    assert (r.score, r.mm_value, r.samples) == (pytest.approx(600.0), pytest.approx(60.0), 5)
    assert [s.score for s in rows] == [1.0, 0.0, 1.0, 1.0, 0.0]
    anls = [{"doc_id": 0, "prediction": "a", "metric": 0.75}]
    r, rows = result_from_raw(bench["docvqa"], {"status": "ok", "value": 0.75, "samples": anls}, _base("docvqa"))
    assert (r.score, rows[0].score) == (pytest.approx(75.0), 0.75)
    r, _ = result_from_raw(bench["mmbench"], {"status": "ok", "value": 62.5, "samples": anls}, _base("mmbench"))
    assert r.score == 62.5  # its aggregation returns percent already
    r, _ = result_from_raw(bench["textvqa"], {"status": "failed", "error": "boom"}, _base("textvqa"))
    assert (r.status, r.score, r.failure_reason) == ("failed", None, "boom")
    # A pooled benchmark's aggregate must be the mean of its per-question scores (lmms-eval state leaking between
    # runs, or a changed metric, would break that): otherwise the benchmark fails rather than report either.
    r, _ = result_from_raw(bench["docvqa"], {"status": "ok", "value": 0.5, "samples": anls}, _base("docvqa"))
    assert r.status == "failed" and r.score is None and "does not match its per-question scores" in r.failure_reason


def test_summaries_state_their_columns_and_partial_ones_say_what_is_missing() -> None:
    defs = {
        "GR": SummaryDef(title="g", columns=["g/a", "g/b"]),
        "WR": SummaryDef(title="w", columns=["w/a"]),
        "MM": SummaryDef(title="m", columns=["q1", "q2", "q3"]),
        "Average": SummaryDef(title="avg", of=["GR", "WR", "MM"]),
    }
    s = summarise({"g/a": 40.0, "g/b": 60.0, "q1": 70.0, "q3": 50.0, "other": 1.0}, defs)
    assert (s["GR"].value, s["GR"].columns, s["GR"].partial) == (50.0, ["g/a", "g/b"], False)
    assert s["WR"].value is None and s["WR"].missing == ["w/a"]
    assert (s["MM"].value, s["MM"].missing) == (60.0, ["q2"])
    assert (s["Average"].value, s["Average"].columns, s["Average"].missing) == (55.0, ["GR", "MM"], ["WR"])
    assert s["MM"].describe() == "MM = 60.0 (mean of q1, q3; partial, missing q2)"
    assert s["GR"].describe() == "GR = 50.0 (mean of g/a, g/b)"


@needs_lmms
def test_mmvet_grades_come_from_the_judge_endpoint_are_cached_and_failures_are_not_zero(tmp_path: Path) -> None:
    from vlascore.judging.vlm import JudgeAbort
    from vlascore.qa.mmvet import MMVetGrader, grading_prompt, grading_query, parse_grade

    prompt = grading_prompt()
    assert "Ground truth | Prediction | Correctness" in prompt  # MM-Vet's few-shot table, from lmms-eval's source
    assert grading_query("P", "Q?", "7 <OR> seven", "7").endswith("Q? | 7  <OR>  seven | 7 |")
    assert parse_grade(" 0.4 because") == 0.4
    for bad in ("", "maybe", "1.5"):
        with pytest.raises(ValueError):
            parse_grade(bad)
    replies = iter(["0.8", "no", "later", MockReply(status=500), MockReply(status=500)])
    with MockOpenAI(lambda body: next(replies, MockReply(status=500))) as server:
        grader = MMVetGrader(Endpoint(model="judge", base_url=server.url, max_retries=0), cache_dir=tmp_path)
        ok = grader.grade("Q?", "yes", "yes")
        assert (ok.status, ok.score, ok.cached) == ("ok", 0.8, False)
        again = grader.grade("Q?", "yes", "yes")
        assert (again.status, again.score, again.cached, server.chat_calls) == ("ok", 0.8, True, 1)
        # two replies that are not grades, then the endpoint fails: a failed grade with its reason, never 0
        bad = grader.grade("Other?", "yes", "no")
        assert bad.status == "failed" and bad.score is None and bad.raw_replies == ["no", "later"]
        assert "InternalServerError" in bad.failure_reason
    with pytest.raises(JudgeAbort, match="set \\$OPENAI_API_KEY"):
        MMVetGrader(Endpoint(model="judge"))


def test_scripted_qa_answers_from_its_file_and_does_not_act(tmp_path: Path) -> None:
    answers = tmp_path / "a.json"
    answers.write_text(json.dumps({"textvqa": {"0": "stop", "*": "go"}}))
    model = ADAPTERS.get("scripted-qa")(answers=str(answers))
    assert model.answer(Question("q", benchmark="textvqa", doc_id=0)) == "stop"
    assert model.answer(Question("q", benchmark="textvqa", doc_id=9)) == "go"
    with pytest.raises(KeyError, match="no 'docvqa' section"):
        model.answer(Question("q", benchmark="docvqa", doc_id=0))
    with pytest.raises(ValueError, match="needs -M answers"):
        ADAPTERS.get("scripted-qa")()
    result = runner.invoke(
        app,
        ["run", "-m", "scripted-qa", "-M", f"answers={answers}", "-s", "toy", "-n", "1", "-o", str(tmp_path / "run")],
    )
    assert result.exit_code == 2 and "does not act" in result.output and not (tmp_path / "run").exists()


def test_a_policy_without_a_vlm_side_is_refused_by_qa_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(NoVLMSideError, match="no VLM side"):
        ADAPTERS.get("random")().answer(Question("q"))
    result = runner.invoke(app, ["qa", "-m", "random", "-b", "textvqa", "-o", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--model vlm -M path=" in " ".join(result.output.split())


def test_qa_help_says_how_to_point_at_the_real_datasets() -> None:
    result = runner.invoke(app, ["qa", "--help"])
    flat = " ".join(result.output.split())
    for needle in ("--data-dir", "huggingface-cli download", "HF_TOKEN", "--limit", "MM-Vet", "--base-url"):
        assert needle in flat
    listed = runner.invoke(app, ["qa", "--list"])
    assert listed.exit_code == 0 and "lmms-lab-encoder/MMBench" in listed.output


@needs_lmms
def test_overlay_tasks_include_lmms_evals_config_and_change_only_data_and_metrics(tmp_path: Path) -> None:
    from vlascore.qa.overlay import Function, overlay_config, write_overlay

    bench = load_benchmarks().benchmarks
    write_benchmarks(tmp_path, only=["mmbench", "mmvet"])
    mmbench = overlay_config(bench["mmbench"], data_source(bench["mmbench"], tmp_path / "mmbench"))
    assert mmbench["include"].endswith("lmms_eval/tasks/mmbench/mmbench_en_dev.yaml")
    assert [m["metric"] for m in mmbench["metric_list"]] == ["gpt_eval_score"]  # no xlsx submission file
    assert mmbench["metric_list"][0]["aggregation"] == Function(
        "lmms_eval.tasks.mmbench.en_utils.mmbench_aggregate_dev_results_static"
    )
    assert mmbench["dataset_path"] == "parquet" and mmbench["dataset_name"] is None
    hub = overlay_config(bench["textvqa"], data_source(bench["textvqa"], None))
    assert "dataset_path" not in hub and hub["metric_list"][0]["aggregation"] == "mean"
    mmvet = overlay_config(bench["mmvet"], data_source(bench["mmvet"], tmp_path / "mmvet"))
    assert "include" not in mmvet  # lmms-eval's mmvet module opens an OpenAI client at import; vlascore grades
    assert mmvet["process_results"] == Function("vlascore.qa.hooks.keep_reply")
    assert mmvet["generation_kwargs"]["max_new_tokens"] == 1024  # the benchmark's own generation settings
    text = write_overlay(bench["mmvet"], data_source(bench["mmvet"], tmp_path / "mmvet"), tmp_path / "t").read_text()
    assert "!function 'vlascore.qa.hooks.keep_reply'" in text or "!function vlascore.qa.hooks.keep_reply" in text


@needs_lmms
def test_lmms_eval_resolves_the_vlascore_model_through_its_entry_point() -> None:
    from lmms_eval.models import get_model

    from vlascore.qa.lmms_plugin import VlascoreLMM, clean_text

    assert get_model("vlascore") is VlascoreLMM
    assert clean_text("Which\x0b side?\x07\tnow\n") == "Which side?\tnow\n"


def test_a_results_key_follows_the_data_not_where_a_local_copy_lies(tmp_path: Path) -> None:
    import shutil

    from vlascore.qa.run import QAOptions, generation_key

    bench = load_benchmarks().benchmarks["docvqa"]
    write_benchmarks(tmp_path / "a", only=["docvqa"])
    shutil.copytree(tmp_path / "a", tmp_path / "b")

    def key(where: Any, **options: Any) -> str:
        return generation_key(bench, data_source(bench, where), "m", {}, QAOptions(**options))

    assert key(tmp_path / "a" / "docvqa") == key(tmp_path / "b" / "docvqa")  # moved: same data
    assert key(None) != key("someone/DocVQA-mirror")  # another hub dataset
    assert key(None) != key(None, limit=10) != key(None, seed=1)


def test_the_combined_table_orders_benchmarks_and_flags_summaries_over_different_columns(tmp_path: Path) -> None:
    from qakit import MM, write_qa  # tests/qakit.py

    write_qa(tmp_path / "a", "vlm")  # mmmu, mmvet, ocrbench (subset), textvqa failed: MM over 3 columns
    write_qa(tmp_path / "b", "vlm", only=("ocrbench", "mmmu"))  # MM over 2 columns
    result = runner.invoke(app, ["score", str(tmp_path / "b"), str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    table = flat[flat.index("Combined") :]
    assert table.index("mmmu") < table.index("mmvet") < table.index("ocrbench") < table.index("textvqa")
    assert f"a: MM = {MM:.1f} (mean of mmmu, mmvet, ocrbench; partial, missing mmstar" in flat
    assert "b: MM = 55.0 (mean of mmmu, ocrbench; partial" in flat  # (50 + 600/10) / 2
    assert "MM averages different columns in different runs: those values are not comparable" in flat
    assert "a: ~ run on a subset (--limit): ocrbench" in flat
