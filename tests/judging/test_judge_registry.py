"""The judge registry: a kind names an EpisodeJudge subclass; a new kind is one class and one YAML file, and every
command that judges picks it up (the recipe in docs/extending.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlascore.cli import app
from vlascore.judging.base import JUDGES, EpisodeJudge, JudgeContext
from vlascore.judging.catalog import load_judge_file
from vlascore.judging.definitions import JudgeError, JudgeSpec
from vlascore.judging.inputs import JudgeInput
from vlascore.judging.judgement import Judgement, Mode, dimensions_for
from vlascore.registry import PluginTypeError, Registry
from vlascore.store import LoadedRun


class ConstantJudge(EpisodeJudge):
    """Scores every dimension `params.score`: the smallest possible judge kind."""

    reproducible = True

    @classmethod
    def for_run(cls, spec: JudgeSpec, mode: Mode, run: LoadedRun, context: JudgeContext) -> ConstantJudge:
        judge = cls()
        judge.spec, judge.mode = spec, mode
        return judge

    def judge(self, inp: JudgeInput, use_cache: bool = True) -> Judgement:
        score = int(self.spec.params["score"])
        return Judgement(
            episode_id=inp.episode_id,
            judge=self.spec.name,
            judge_version=self.spec.effective_version,
            mode=self.mode,
            status="ok",
            scores=dict.fromkeys(dimensions_for(self.mode), score),
            thought="constant",
        )


JUDGES.register("constant", ConstantJudge)


def test_a_new_kind_is_one_class_and_one_yaml(tmp_path: Path) -> None:
    judge = tmp_path / "constant.yaml"
    judge.write_text("name: constant\nkind: constant\nversion: '1'\nparams: {score: 6}\n")
    run = tmp_path / "run"
    cli = CliRunner()
    ran = cli.invoke(app, ["run", "-m", "toy-expert", "-s", "toy", "-n", "2", "-o", str(run), "--no-progress"])
    assert ran.exit_code == 0, ran.output
    judged = cli.invoke(app, ["judge", str(run), "-j", str(judge), "--no-progress"])
    assert judged.exit_code == 0, judged.output
    stored = json.loads((run / "judgements" / "constant.json").read_text())
    assert [j["scores"] for j in stored["judgements"]] == [
        {"Reasoning": 6, "Action": 6, "Intention": 6, "Alignment": 6}
    ] * 2
    assert "VLA Score of run (reasoning policy) judged by constant" in " ".join(judged.output.split())


def test_unknown_kinds_and_foreign_classes_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: groundd\nversion: '1'\n")
    with pytest.raises(JudgeError, match="unknown judge kind 'groundd'. Did you mean 'grounded'"):
        load_judge_file(bad)
    registry: Registry[type[EpisodeJudge]] = Registry("judge kind", base=EpisodeJudge)
    with pytest.raises(PluginTypeError, match="is not a subclass of vlascore.judging.base.EpisodeJudge"):
        registry.register("str", str)  # type: ignore[arg-type]
    registry.register("lazy", "builtins:dict")
    with pytest.raises(PluginTypeError, match="'lazy' .* is not a subclass"):
        registry.get("lazy")
