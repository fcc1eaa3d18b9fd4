"""A run as an MLflow run (the `track` extra): the adapter, suite and settings as parameters, success rates and
VLA Scores as metrics, and results.json, run.json and the judgement files as artifacts. The tracking URI is
MLflow's (`--tracking-uri`, or $MLFLOW_TRACKING_URI): a server's http(s) address, or a local SQLite file that
works offline (sqlite:///mlflow.db)."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlascore.export.base import Exporter, ExportError, Progress

if TYPE_CHECKING:
    from vlascore.rundata import RunData


def _key(text: str) -> str:
    """An MLflow metric or parameter name: letters, digits and _ - . / space only."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]+", "_", text)[:250]


def run_metrics(run: RunData) -> dict[str, float]:
    """success/<task> and success/suite_mean (0-100), vla/<label>/<column> (0-100): what `vlascore score` prints."""
    results = run.results
    metrics: dict[str, float] = {}
    for task in results.tasks:
        if task.success_rate is not None:
            metrics[f"success/{task.task}"] = 100 * task.success_rate
    if results.suite_mean is not None:
        metrics["success/suite_mean"] = 100 * results.suite_mean
    for v in results.vla:
        for column in ("sim", "reasoning", "action", "intention", "alignment", "vla_score"):
            estimate = getattr(v, column)
            if estimate is not None and estimate.value is not None:
                metrics[f"vla/{v.label}/{column}"] = float(estimate.value)
    return {_key(k): v for k, v in metrics.items()}


def run_params(run: RunData) -> dict[str, str]:
    record = run.run
    params = {
        "adapter": record.adapter,
        "suite": record.suite,
        "suite_fingerprint": record.suite_fingerprint,
        "protocol_version": record.protocol_version,
        "backend": record.backend,
        "vlascore_version": record.vlascore_version,
        "frame_stride": str(record.frame_stride),
        "episodes": str(len(run.episodes)),
    }
    params |= {f"adapter_config.{k}": json.dumps(v)[:500] for k, v in record.adapter_config.items()}
    return {_key(k): v for k, v in params.items()}


class MlflowExporter(Exporter):
    name = "mlflow"
    extras = ("track",)

    def export(self, run: RunData, out: Path, episodes: list[str] | None, progress: Progress | None) -> list[Path]:
        from vlascore.extras import MissingExtraError, require

        if episodes is not None:
            raise ExportError("--to mlflow logs a whole run: leave out --episode")
        try:
            mlflow = require("mlflow", "track", "MLflow tracking")
        except MissingExtraError as exc:
            raise ExportError(str(exc)) from None
        try:
            return self._log(mlflow, run, out, progress)
        except mlflow.exceptions.MlflowException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(
                f"MLflow refused ({first}); a local store that works offline: --tracking-uri sqlite:///mlflow.db"
            ) from None

    def _log(self, mlflow: Any, run: RunData, out: Path, progress: Progress | None) -> list[Path]:
        uri = self.options.get("tracking_uri")
        if uri:
            mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(self.options.get("experiment") or "vlascore")
        with mlflow.start_run(run_name=run.run.run_id) as active:
            mlflow.set_tags({"vlascore.run_id": run.run.run_id, "vlascore.created_at": run.run.created_at})
            mlflow.log_params(run_params(run))
            metrics = run_metrics(run)
            mlflow.log_metrics(metrics)
            with tempfile.TemporaryDirectory() as tmp:
                results = Path(tmp) / "results.json"
                results.write_text(run.results.model_dump_json(indent=2))
                mlflow.log_artifact(str(results))
            mlflow.log_artifact(str(run.path / "run.json"))
            if (run.path / "judgements").is_dir():
                mlflow.log_artifacts(str(run.path / "judgements"), artifact_path="judgements")
            info: dict[str, Any] = {
                "tracking_uri": mlflow.get_tracking_uri(),
                "experiment_id": active.info.experiment_id,
                "run_id": active.info.run_id,
                "artifact_uri": active.info.artifact_uri,
                "metrics": len(metrics),
            }
        out.mkdir(parents=True, exist_ok=True)
        receipt = out / "mlflow.json"
        receipt.write_text(json.dumps(info, indent=2))
        if progress:
            progress(1, 1, f"MLflow run {info['run_id']}")
        return [receipt]
