"""Loading a pipeline file (``distillery run FILE.py``): execute it as a script and find its Pipeline, or
its ``workflow`` function (several pipelines and other steps, e.g. the flagship; called with the run's
``output``, ``address``, ``resume`` and ``num_cpus`` plus the user's ``--set NAME=VALUE`` settings).

The file is run with ``__name__ == "__distillery__"`` so its ``if __name__ == "__main__":`` block (used
when the file is run with plain ``python``) does not start a second run.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Callable

from operators import ParameterError
from pipelines.dsl import Pipeline
from pipelines.errors import DistilleryError


def load_pipeline(path: str) -> Pipeline | Callable[..., dict]:
    """Return the ``workflow`` function defined in ``path``, else its ``Pipeline`` (the variable ``pipeline``,
    or the only one)."""
    file = Path(path)
    if not file.is_file():
        raise DistilleryError(f"{path}: no such pipeline file")
    source = file.read_text(encoding="utf-8")
    try:
        code = compile(source, str(file), "exec")
    except SyntaxError as exc:
        raise DistilleryError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    module = types.ModuleType("__distillery__")
    module.__file__ = str(file.resolve())
    sys.modules["__distillery__"] = module  # dataclasses (and pickling) look a class's module up here
    namespace = module.__dict__
    try:
        exec(code, namespace)  # noqa: S102 - running the user's own pipeline file is the point
    except (DistilleryError, ParameterError) as exc:
        raise DistilleryError(f"{path}: {exc}") from exc
    if callable(namespace.get("workflow")):
        return namespace["workflow"]
    found = {name: value for name, value in namespace.items() if isinstance(value, Pipeline)}
    if isinstance(namespace.get("pipeline"), Pipeline):
        return namespace["pipeline"]
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise DistilleryError(f"{path}: defines no Pipeline (assign one to a variable named 'pipeline') "
                              "and no 'workflow' function")
    raise DistilleryError(f"{path}: defines several Pipelines ({', '.join(found)}); name the one to run 'pipeline'")
