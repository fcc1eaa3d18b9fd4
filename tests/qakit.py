"""QA results written straight to a run directory (no lmms-eval), with figures worked out by hand:

    mmmu      50.0 %      4 questions (per-sample 1, 0, 1, 0)      MM 50.0
    mmvet     60.0 %      4 questions, judge grades 0.5, 1.0, 0.0, 0.9 (mean 0.6)  MM 60.0
    ocrbench  600 /1000   subset: the first 5 questions (3 right)  MM 60.0
    textvqa   failed      (no score, enters no summary)

MM = (50 + 60 + 60) / 3 = 56.67 over mmmu, mmvet, ocrbench: partial (5 of its 8 columns missing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlascore.qa.benchmarks import DataSource, load_benchmarks
from vlascore.qa.records import Grade, QAResult, QASample, write_result

FAILURE = "lmms-eval crashed: <script>alert('qa')</script>"
MM = (50.0 + 60.0 + 60.0) / 3
MM_COLUMNS = ["mmmu", "mmvet", "ocrbench"]
MM_MISSING = ["mmstar", "mmbench", "textvqa", "infovqa", "docvqa"]
GRADES = [0.5, 1.0, 0.0, 0.9]
GRADER = {"grader": "mmvet-grader-1", "judge_model": "judge-llm", "base_url": None}


def result(model: str, benchmark: str, score: float | None, samples: int, **fields: Any) -> QAResult:
    bench = load_benchmarks().benchmarks[benchmark]
    status = fields.pop("status", "ok")
    return QAResult(
        benchmark=benchmark,
        title=bench.title,
        status=status,
        score=score,
        unit=bench.unit,
        mm_value=None if score is None else score / bench.mm_divisor,
        lmms_task=bench.lmms_task,
        metric=bench.metric,
        samples=samples,
        model=model,
        data=DataSource(kind="hub", path=bench.hub, config=bench.config, split=bench.split),
        key=f"{benchmark}-key",
        **fields,
    )


def write_qa(run_dir: Path, model: str, only: tuple[str, ...] | None = None) -> Path:
    """The results above (or just those in `only`) in RUN/qa/, plus a qa/work/ file a bundle must leave out."""
    rows: dict[str, tuple[QAResult, list[QASample]]] = {
        "mmmu": (
            result(model, "mmmu", 50.0, 4),
            [
                QASample(doc_id=i, prediction="A", target="A" if i % 2 == 0 else "B", score=float(i % 2 == 0))
                for i in range(4)
            ],
        ),
        "mmvet": (
            result(model, "mmvet", 60.0, 4, grader=GRADER),
            [
                QASample(doc_id=i, prediction=f"reply {i}", score=g, grade=Grade(status="ok", score=g))
                for i, g in enumerate(GRADES)
            ],
        ),
        "ocrbench": (
            result(model, "ocrbench", 600.0, 5, limit=5),
            [QASample(doc_id=i, prediction="text", score=float(i < 3)) for i in range(5)],
        ),
        "textvqa": (result(model, "textvqa", None, 0, status="failed", failure_reason=FAILURE), []),
    }
    for name, (res, samples) in rows.items():
        if only is None or name in only:
            write_result(run_dir, res, samples)
    (run_dir / "qa" / "work").mkdir(parents=True, exist_ok=True)
    (run_dir / "qa" / "work" / "lmms.log").write_text("raw lmms-eval output")
    return run_dir
