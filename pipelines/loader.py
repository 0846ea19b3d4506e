"""Loading a pipeline file (``distillery run FILE.py``): execute it as a script and find its Pipeline.

The file is run with ``__name__ == "__distillery__"`` so its ``if __name__ == "__main__":`` block (used
when the file is run with plain ``python``) does not start a second run.
"""
from __future__ import annotations

from pathlib import Path

from operators import ParameterError
from pipelines.dsl import Pipeline
from pipelines.errors import DistilleryError


def load_pipeline(path: str) -> Pipeline:
    """Return the ``Pipeline`` defined in ``path`` (the variable ``pipeline``, or the only one)."""
    file = Path(path)
    if not file.is_file():
        raise DistilleryError(f"{path}: no such pipeline file")
    source = file.read_text(encoding="utf-8")
    try:
        code = compile(source, str(file), "exec")
    except SyntaxError as exc:
        raise DistilleryError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    namespace = {"__name__": "__distillery__", "__file__": str(file.resolve())}
    try:
        exec(code, namespace)  # noqa: S102 - running the user's own pipeline file is the point
    except (DistilleryError, ParameterError) as exc:
        raise DistilleryError(f"{path}: {exc}") from exc
    found = {name: value for name, value in namespace.items() if isinstance(value, Pipeline)}
    if isinstance(namespace.get("pipeline"), Pipeline):
        return namespace["pipeline"]
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise DistilleryError(f"{path}: defines no Pipeline (assign one to a variable named 'pipeline')")
    raise DistilleryError(f"{path}: defines several Pipelines ({', '.join(found)}); name the one to run 'pipeline'")
