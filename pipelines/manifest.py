"""The run manifest (``OUTPUT/_manifest.json``): per-stage configs, config hashes, counts, bytes and
seconds; library versions; start and end. Also the resume hashes (content, not paths: ``chain_hashes``,
``content_fingerprints``) and the accounting check that every run ends with."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from operators.fingerprint import dataset_fingerprint, fingerprint
from pipelines.errors import AccountingError
from pipelines.io import parquet_rows

MANIFEST = "_manifest.json"
LIBRARIES = ("distillery", "ray", "pyarrow", "polars", "datasketch", "numpy", "torch", "transformers")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


# Operator parameters that name files or folders whose content decides the operator's output: an eval set,
# a dedup reference (an earlier output), a fastText model, a Parquet of reference texts.
CONTENT_FIELDS = ("eval_sets", "reference", "reference_path", "model_path")


def _path_fingerprint(path: str) -> str:
    location = Path(path).expanduser()
    if location.is_file():
        return fingerprint(location)
    found = dataset_fingerprint(location)
    if (location / "_lsh_index").is_dir():  # a dedup reference is compared through its MinHash index too
        found += "+" + fingerprint(location / "_lsh_index")
    return found


def content_fingerprints(op: Any) -> dict[str, str]:
    """Fingerprints of the content an operator reads besides its batches (operators/fingerprint.py): the
    files named by its ``CONTENT_FIELDS`` parameters, a teacher's model folder (``content_fingerprint()`` of
    a field's value), and whatever the operator's own ``fingerprints()`` method, if it has one, returns.
    Part of the stage's resume hash, so an eval set, reference or model rewritten in place reruns the stage."""
    found: dict[str, str] = {}
    own = getattr(op, "fingerprints", None)
    if callable(own):
        found.update(own())
    for field in dataclasses.fields(op) if dataclasses.is_dataclass(op) else ():
        value = getattr(op, field.name, None)
        if callable(getattr(value, "content_fingerprint", None)):
            content = value.content_fingerprint()
            if content is not None:
                found[field.name] = content
        elif field.name in CONTENT_FIELDS:
            paths = value if isinstance(value, (tuple, list)) else (value,)
            for k, path in enumerate(paths):
                if isinstance(path, (str, Path)) and str(path) and Path(path).expanduser().exists():
                    found[f"{field.name}[{k}]"] = _path_fingerprint(str(path))
    return found


def chain_hashes(source_config: dict, input_fingerprint: Any, stage_configs: list[dict]) -> list[str]:
    """One hash per stage covering the input data's content fingerprint and every config (with its
    ``content_fingerprints``) up to it, so a stage's saved output is reused only if nothing upstream of it
    changed: neither a parameter nor a byte of the input, an eval set, a reference or a model."""
    digest = hashlib.sha256(json.dumps([source_config, input_fingerprint], sort_keys=True, default=str).encode())
    hashes = []
    for config in stage_configs:
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        hashes.append(digest.copy().hexdigest()[:16])
    return hashes


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON record we wrote (manifest, checkpoint marker), or None if absent or unreadable."""
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except json.JSONDecodeError:
        return None


def read_manifest(output: Path) -> dict[str, Any] | None:
    return read_json(output / MANIFEST)


def check_accounting(stages: list[dict], input_rows: int, output_rows: int, output: Path) -> dict[str, int]:
    """Raise ``AccountingError`` unless rows balance everywhere, from three independent sources:
    the ledger's per-batch counts, the input files' footers, and the rows found in the written files.

    * each stage: rows_in == rows_out + rows_rejected; a generate stage, whose outputs are new rows:
      rows_in == sources_kept + sources_rejected (inputs with a kept output, inputs whose outputs were all rejected)
    * stage i's rows_out == stage i+1's rows_in; the first stage's rows_in == rows in the input files
    * the last stage's rows_out == rows in the output files
    * each stage's rows_rejected == rows in its ``_rejected/`` files
    * each dedup stage's rows_in == rows in its ``_clusters/`` files (one row per document)
    """
    problems = []
    expected_in = input_rows
    for stage in stages:
        name = stage["name"]
        if stage["rows_in"] != expected_in:
            problems.append(f"stage {name!r} received {stage['rows_in']} rows but {expected_in} were sent to it")
        if stage["kind"] == "generate":
            if stage["rows_in"] != stage["sources_kept"] + stage["sources_rejected"]:
                problems.append(f"stage {name!r}: {stage['rows_in']} source rows in != {stage['sources_kept']} with a "
                                f"kept output + {stage['sources_rejected']} with every output rejected")
        elif stage["rows_in"] != stage["rows_out"] + stage["rows_rejected"]:
            problems.append(f"stage {name!r}: {stage['rows_in']} in != {stage['rows_out']} out + "
                            f"{stage['rows_rejected']} rejected")
        on_disk = parquet_rows(output / "_rejected" / stage["rejected_dir"])[1] if stage.get("rejected_dir") else 0
        if on_disk != stage["rows_rejected"]:
            problems.append(f"stage {name!r}: {stage['rows_rejected']} rows rejected but {on_disk} in its rejects files")
        if stage.get("clusters_dir"):
            clustered = parquet_rows(output / "_clusters" / stage["clusters_dir"])[1]
            if clustered != stage["rows_in"]:
                problems.append(f"stage {name!r}: {stage['rows_in']} rows in but {clustered} in its clusters files")
        expected_in = stage["rows_out"]
    if expected_in != output_rows:
        problems.append(f"the last stage kept {expected_in} rows but the output files hold {output_rows}")
    if problems:
        raise AccountingError("rows were lost or duplicated: " + "; ".join(problems))
    rejected = sum(s["rows_rejected"] for s in stages)
    return {"rows_in": input_rows, "rows_out": output_rows, "rows_rejected": rejected, "balanced": True}
