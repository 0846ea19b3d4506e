"""Pipelines: the DSL (``Pipeline``), the Ray runner, Parquet I/O with manifests, the CLI, inspection,
job submission, and the ready pipelines users copy (``pipelines/quickstart.py``)."""
from pipelines.dsl import Pipeline
from pipelines.errors import AccountingError, DistilleryError, InputError

__all__ = ["AccountingError", "DistilleryError", "InputError", "Pipeline"]
