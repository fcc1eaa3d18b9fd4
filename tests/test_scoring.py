from __future__ import annotations

from pathlib import Path

import pytest
from conftest import small_suite

from vlascore import runner
from vlascore.judging.judgement import JUDGEMENTS_DIR, Judgement, JudgementFile
from vlascore.scoring import RESULTS_FILE, RESULTS_SCHEMA_VERSION, RunResults, score_and_write, wilson_interval
from vlascore.store import StoreError
from vlascore.suites import load_suite


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (8, 10, 0.4901624, 0.9433178),  # textbook values for the Wilson score interval
        (0, 20, 0.0, 0.1611252),
        (20, 20, 0.8388748, 1.0),
        (1, 2, 0.0945312, 0.9054688),
    ],
)
def test_wilson_interval_matches_reference_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-6)


def test_wilson_interval_with_no_data_is_uninformative() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_public_names_stay_importable_from_the_package() -> None:
    import vlascore.scoring as scoring
    from vlascore.scoring import success

    for name in ("score_run", "score_and_write", "wilson_interval", "RunResults", "TaskResult", "RESULTS_FILE"):
        assert hasattr(scoring, name), name
    assert scoring.score_run is success.score_run
    assert sorted(scoring.__all__) == sorted(set(scoring.__all__))


def _judgement_file(run_id: str, label: str, episode_ids: list[str]) -> JudgementFile:
    scores = {"Reasoning": 10, "Action": 10, "Intention": 10, "Alignment": 10}
    verdicts = [
        Judgement(episode_id=e, judge="hand", judge_version="1", mode="reasoning", status="ok", scores=scores)
        for e in episode_ids
    ]
    return JudgementFile(label=label, run_id=run_id, judge="hand", judge_version="1", judgements=verdicts)


def test_score_and_write_adds_a_vla_score_per_judgement_file(tmp_path: Path) -> None:
    runner.run(model="toy-expert", suite=small_suite(load_suite("toy"), ["ToyPick"], [0, 1, 2]), out=tmp_path / "r")
    results = score_and_write(tmp_path / "r")
    assert results.schema_version == RESULTS_SCHEMA_VERSION == 3
    assert results.vla == []  # not judged yet

    folder = tmp_path / "r" / JUDGEMENTS_DIR
    folder.mkdir()
    (folder / "b-judge.json").write_text(_judgement_file("r", "b-judge", ["ToyPick-0", "ToyPick-1"]).model_dump_json())
    (folder / "a-judge.json").write_text(_judgement_file("r", "a-judge", ["ToyPick-2"]).model_dump_json())
    results = score_and_write(tmp_path / "r")
    assert [v.label for v in results.vla] == ["a-judge", "b-judge"]
    a, b = results.vla
    assert (a.judged, a.unjudged, b.judged, b.unjudged) == (1, 2, 2, 1)
    assert b.vla_score.value == pytest.approx(100.0)  # perfect scores on successful episodes
    saved = RunResults.model_validate_json((tmp_path / "r" / RESULTS_FILE).read_text())
    assert saved.vla == results.vla

    (folder / "c-judge.json").write_text(_judgement_file("other-run", "c-judge", ["ToyPick-0"]).model_dump_json())
    with pytest.raises(StoreError, match="c-judge.json"):
        score_and_write(tmp_path / "r")
