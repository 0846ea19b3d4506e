"""Build a ``CurriculumStream`` from a spec: a YAML file, a Python file, or a dict.

YAML (every key but ``domains`` and ``schedule`` optional)::

    tokenizer: ~/.cache/distillery/models/SmolLM2-135M-Instruct   # default: $DISTILLERY_MODELS or that path
    seq_len: 256
    batch_size: 8
    seed: 0
    domains: {split_by_source: data/sample}     # or a list of {name, path, source}
    schedule:                                   # type: constant | piecewise | cosine | temperature | doremi
      type: piecewise
      points: [[0, {docs: 1, fortunes: 1}], [2000000, {dictionary: 1, manpages: 1}]]
    difficulty: {column: length, pacing: root, full_at_tokens: 1000000}   # or {domain: {...}}
    max_epochs: {licenses: 3}

A Python file must define ``stream`` (a ``CurriculumStream``) or ``make_stream()`` returning one.
Unknown keys and bad values raise ``CurriculumConfigError`` naming the key.
"""
from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any

from curricula.errors import CurriculumConfigError

TOP_KEYS = {"tokenizer", "seq_len", "batch_size", "seed", "domains", "schedule", "difficulty", "max_epochs",
            "document_ids", "eos_token", "log_every", "log_path", "rank", "world_size", "chunk_docs"}


def default_tokenizer() -> str:
    base = os.environ.get("DISTILLERY_MODELS") or os.path.expanduser("~/.cache/distillery/models")
    return os.path.join(base, "SmolLM2-135M-Instruct")


def load_spec(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise CurriculumConfigError(f"mixture: no such file {str(path)!r}")
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict):
        raise CurriculumConfigError(f"{path}: must be a mapping of curriculum settings")
    return spec


def _schedule(spec: Any):
    from curricula.mixture import Constant, DoReMi, Piecewise, Temperature, cosine

    if not isinstance(spec, dict):
        raise CurriculumConfigError("schedule: must be a mapping with a 'type'")
    spec = dict(spec)
    kind = spec.pop("type", "constant")
    builders = {
        "constant": lambda: Constant(spec.pop("weights")),
        "piecewise": lambda: Piecewise([(int(t), m) for t, m in spec.pop("points")], shape=spec.pop("shape", "linear")),
        "cosine": lambda: cosine(spec.pop("start"), spec.pop("end"), int(spec.pop("total_tokens"))),
        "temperature": lambda: Temperature(float(spec.pop("temperature")), spec.pop("sizes", None)),
        "doremi": lambda: DoReMi(**{k: spec.pop(k) for k in list(spec)}),
    }
    if kind not in builders:
        raise CurriculumConfigError(f"schedule.type: must be one of {', '.join(builders)}, got {kind!r}")
    try:
        schedule = builders[kind]()
    except KeyError as exc:
        raise CurriculumConfigError(f"schedule.{exc.args[0]}: required for type {kind!r}") from None
    except TypeError as exc:
        raise CurriculumConfigError(f"schedule: {exc}") from None
    if spec:
        raise CurriculumConfigError(f"schedule.{sorted(spec)[0]}: unknown key for type {kind!r}")
    return schedule


def _difficulty(spec: Any):
    from curricula.order import Difficulty

    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise CurriculumConfigError("difficulty: must be a mapping")
    per_domain = spec and all(isinstance(v, dict) for v in spec.values())
    try:
        return {k: Difficulty(**v) for k, v in spec.items()} if per_domain else Difficulty(**spec)
    except TypeError as exc:
        raise CurriculumConfigError(f"difficulty: {exc}") from None


def stream_from_spec(spec: dict[str, Any], base: Path | None = None):
    """A ``CurriculumStream`` from a parsed YAML spec (relative paths resolve against ``base``)."""
    from curricula.source import Domain, split_by_source
    from curricula.stream import CurriculumStream

    unknown = sorted(set(spec) - TOP_KEYS)
    if unknown:
        raise CurriculumConfigError(f"{unknown[0]}: unknown key (known: {', '.join(sorted(TOP_KEYS))})")
    resolve = (lambda p: str(base / p) if base is not None and not os.path.isabs(os.path.expanduser(p))
               else os.path.expanduser(p))
    if "domains" not in spec:
        raise CurriculumConfigError("domains: required (a list of {name, path, source} or {split_by_source: PATH})")
    domains_spec = spec["domains"]
    if isinstance(domains_spec, dict) and "split_by_source" in domains_spec:
        domains = split_by_source(resolve(domains_spec["split_by_source"]))
    elif isinstance(domains_spec, list):
        try:
            domains = [Domain(name=d["name"], path=resolve(d["path"]), source=d.get("source")) for d in domains_spec]
        except (KeyError, TypeError) as exc:
            raise CurriculumConfigError(f"domains: each entry needs name and path ({exc})") from None
    else:
        raise CurriculumConfigError("domains: must be a list of {name, path, source} or {split_by_source: PATH}")
    if "schedule" not in spec:
        raise CurriculumConfigError("schedule: required")
    options = {k: spec[k] for k in ("seq_len", "batch_size", "seed", "max_epochs", "document_ids", "eos_token",
                                    "log_every", "rank", "world_size", "chunk_docs") if k in spec}
    if "log_path" in spec:
        options["log_path"] = resolve(spec["log_path"])
    tokenizer = os.path.expanduser(spec.get("tokenizer") or default_tokenizer())
    return CurriculumStream(domains, _schedule(spec["schedule"]), tokenizer,
                            difficulty=_difficulty(spec.get("difficulty")), **options)


def stream_from_file(path: str | Path):
    """A stream from a YAML spec or a Python file defining ``stream`` / ``make_stream()``."""
    path = Path(path)
    if path.suffix == ".py":
        if not path.is_file():
            raise CurriculumConfigError(f"mixture: no such file {str(path)!r}")
        namespace = runpy.run_path(str(path))
        if "stream" in namespace:
            return namespace["stream"]
        if callable(namespace.get("make_stream")):
            return namespace["make_stream"]()
        raise CurriculumConfigError(f"{path}: defines neither 'stream' nor 'make_stream()'")
    return stream_from_spec(load_spec(path), base=path.resolve().parent)
