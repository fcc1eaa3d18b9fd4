"""The VLM judge against endpoints that misbehave, each a real local HTTP server on 127.0.0.1 through the real
`openai` client: a reply that trickles forever, any reply body (not JSON, no choices, huge), a server that refuses
the request (pinned to another model), an episode whose frames are gone, a re-judge against a failing endpoint;
and the exit codes of `vlascore judge`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import jctx, small_suite
from typer.testing import CliRunner

from vlascore import runner
from vlascore.cli import app
from vlascore.judging.endpoint import JudgeAbort
from vlascore.judging.engine import judge_run, judgements_path
from vlascore.judging.judgement import JudgementFile
from vlascore.judging.mockserver import MockOpenAI, MockReply, default_verdict, script
from vlascore.judging.vlm import parse_verdict
from vlascore.suites import load_suite

LABEL = "vla-score-reasoning--m"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "run"
    runner.run(model="toy-expert", suite=small_suite(load_suite("toy"), ["ToyPick"], [0, 1, 2], max_steps=20), out=path)
    return path


@pytest.fixture
def run(base_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base_run, tmp_path / "run"))


def ctx(server: MockOpenAI, **options: object):  # type: ignore[no-untyped-def]
    settings = {"base_url": server.url, "retrieval": False, "cache_dir": None, "use_cache": False, "max_retries": 0}
    return jctx("m", **{**settings, **options})


def test_a_reply_that_trickles_forever_ends_at_the_total_deadline(run: Path) -> None:
    """One byte every 0.2 s never trips a per-read timeout; the total deadline (0.6 s a request) ends each try."""
    verdict = default_verdict({"messages": [{"content": "Alignment"}]})
    with MockOpenAI(script(MockReply(verdict, trickle_s=0.2))) as server:
        jf = judge_run(run, "vla-score", ctx(server, timeout_s=0.6, max_retries=1), episode_ids=["ToyPick-0"])
        assert server.chat_calls == 2  # the first try and one retry, each abandoned at its deadline
    (j,) = jf.judgements
    assert j.status == "failed" and "no complete reply within 0.6 s" in str(j.failure_reason)
    assert "2 tries" in str(j.failure_reason)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>502 Bad Gateway</html>", "the reply is not JSON"),
        (b"", "the reply is not JSON"),
        (json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode(), "it has no choices"),
        (json.dumps({"choices": [{"message": {"content": {"Action": 7}}}]}).encode(), "a dict, not text"),
        (json.dumps([1, 2, 3]).encode(), "it has no choices"),
        (b"[" * 100_000 + b"]" * 100_000, "the reply is not JSON"),
        (b" " * (17 << 20), "larger than"),
    ],
    ids=["html", "empty", "no-choices", "content-not-text", "a-list", "deep-json", "huge"],
)
def test_any_reply_body_is_a_failed_judgement_with_its_reason(run: Path, body: bytes, reason: str) -> None:
    good = default_verdict({"messages": [{"content": "Alignment"}]})
    with MockOpenAI(script(good, MockReply(raw=body))) as server:
        jf = judge_run(run, "vla-score", ctx(server, concurrency=1), episode_ids=["ToyPick-0", "ToyPick-1"])
    first, second = jf.judgements
    assert first.status == "ok"
    assert second.status == "failed" and reason in str(second.failure_reason), second.failure_reason


def test_a_server_pinned_to_another_model_stops_the_pass_after_one_request(run: Path) -> None:
    message = "The model `m` does not exist; this server serves `Qwen/Qwen2.5-VL-7B-Instruct`."
    with MockOpenAI(script(MockReply(message, status=400))) as server:
        with pytest.raises(JudgeAbort) as caught:
            judge_run(run, "vla-score", ctx(server, concurrency=4, max_retries=5))
        assert server.chat_calls == 1  # one request, whatever the concurrency and retries
    assert message in str(caught.value) and "HTTP 400" in str(caught.value)
    assert not judgements_path(run, LABEL).exists()


def test_a_refusal_after_the_endpoint_answered_fails_that_episode_only(run: Path) -> None:
    good = default_verdict({"messages": [{"content": "Alignment"}]})
    too_long = MockReply("This request has 40000 tokens, more than the 32768 the model accepts.", status=400)
    with MockOpenAI(script(good, too_long, good)) as server:
        jf = judge_run(run, "vla-score", ctx(server, concurrency=1, max_retries=5))
        assert server.chat_calls == 3  # a 400 is not retried
    statuses = [(j.status, j.failure_reason) for j in jf.judgements]
    assert statuses[0][0] == statuses[2][0] == "ok" and statuses[1][0] == "failed"
    assert "HTTP 400 (1 request, not retried): This request has 40000 tokens" in str(statuses[1][1])


def test_a_missing_frames_file_fails_that_episode_only(run: Path) -> None:
    (run / "frames" / "ToyPick-1.npz").unlink()
    (run / "frames" / "ToyPick-2.npz").write_bytes(b"PK\x03\x04 not a zip")
    with MockOpenAI() as server:
        jf = judge_run(run, "vla-score", ctx(server))
    by_ep = {j.episode_id: j for j in jf.judgements}
    assert by_ep["ToyPick-0"].status == "ok"
    assert by_ep["ToyPick-1"].status == "failed" and "no frames stored" in str(by_ep["ToyPick-1"].failure_reason)
    assert by_ep["ToyPick-2"].status == "failed" and "cannot read" in str(by_ep["ToyPick-2"].failure_reason)


def test_a_failing_rejudge_keeps_the_earlier_verdicts_and_a_copy(run: Path, tmp_path: Path) -> None:
    with MockOpenAI() as server:
        good = judge_run(run, "vla-score", ctx(server, use_cache=True, cache_dir=tmp_path / "c"))
    assert all(j.status == "ok" for j in good.judgements)
    path = judgements_path(run, LABEL)
    with MockOpenAI(script(MockReply("overloaded", status=503))) as server:  # --no-cache, against a failing server
        again = judge_run(run, "vla-score", ctx(server, use_cache=False, max_retries=0))
    assert [j.model_dump() for j in again.judgements] == [j.model_dump() for j in good.judgements]
    stored = JudgementFile.model_validate_json(path.read_text())
    assert [j.scores for j in stored.judgements] == [j.scores for j in good.judgements]
    # A re-judge whose new verdicts differ replaces them, and keeps the earlier file in superseded/.
    threes = dict.fromkeys(("Action", "Intention", "Reasoning", "Alignment"), 3)
    other = json.dumps({"Thought": "other", "Result": threes})
    with MockOpenAI(script(other)) as server:
        third = judge_run(run, "vla-score", ctx(server, use_cache=False))
    assert all(j.scores["Action"] == 3 for j in third.judgements)
    (copy,) = (run / "judgements" / "superseded").glob(f"{LABEL}.*.json")
    kept = JudgementFile.model_validate_json(copy.read_text())
    assert [j.scores for j in kept.judgements] == [j.scores for j in good.judgements]


def test_judge_exit_codes_say_whether_judgements_failed(run: Path, tmp_path: Path) -> None:
    base = ["judge", str(run), "-j", "vla-score", "--judge-model", "m", "--no-retrieval", "--no-progress"]
    base += ["--max-retries", "0", "--no-cache"]
    with MockOpenAI(script(MockReply(raw=b"not json"))) as server:
        res = CliRunner().invoke(app, [*base, "--base-url", server.url])
    assert res.exit_code == 1, res.output
    out = " ".join(res.output.split())
    assert "failed 3" in out and "the reply is not JSON" in out and "Traceback" not in out
    with MockOpenAI() as server:
        res = CliRunner().invoke(app, [*base, "--base-url", server.url])
    assert res.exit_code == 0, res.output
    with MockOpenAI(script(MockReply("model not served here", status=400))) as server:
        res = CliRunner().invoke(app, [*base, "--base-url", server.url])
    out = " ".join(res.output.split())
    assert res.exit_code == 2 and "model not served here" in out and "Traceback" not in out
    help_text = CliRunner().invoke(app, ["judge", "run", "--help"]).output
    assert "Exit codes" in help_text


@pytest.mark.parametrize(
    ("value", "ok"),
    [(7, True), ("7", True), (True, False), (False, False), (7.5, False), (7.0, False), ("seven", False), (None, 0)],
)
def test_scores_are_strict_integers(value: object, ok: bool) -> None:
    text = json.dumps({"Thought": "t", "Result": {"Action": value, "Intention": 5}})
    if ok:
        assert parse_verdict(text, "specialist")[0] == {"Action": 7, "Intention": 5}
    else:
        with pytest.raises(ValueError, match="Action"):
            parse_verdict(text, "specialist")
