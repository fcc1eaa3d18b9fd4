"""`vlascore export`: a run's records out to the tools people use. One registry of exporters (a format name ->
an Exporter subclass); each writes into an output folder and says what it wrote. Formats: `parquet` and `jsonl`
(episodes, steps, judgements: docs/export.md has their columns), `mp4` (one video per episode with a WebVTT
caption file and a JSON sidecar), `lerobot` (a LeRobot-format dataset of the rollouts), `mlflow` (a tracked run:
parameters, metrics, artifacts)."""

from __future__ import annotations

from vlascore.export.base import EXPORTERS, Exporter, ExportError, Progress

EXPORTERS.register("parquet", "vlascore.export.tables:ParquetExporter")
EXPORTERS.register("jsonl", "vlascore.export.tables:JsonlExporter")
EXPORTERS.register("mp4", "vlascore.export.video:VideoExporter")
EXPORTERS.register("lerobot", "vlascore.export.lerobot:LeRobotExporter")
EXPORTERS.register("mlflow", "vlascore.export.tracking:MlflowExporter")

__all__ = ["EXPORTERS", "ExportError", "Exporter", "Progress"]
