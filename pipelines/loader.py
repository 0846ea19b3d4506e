"""Loading a pipeline file (``distillery run FILE.py``): execute it as a script and find its Pipeline, or
its ``workflow`` function (several pipelines and other steps, e.g. the flagship; called with the run's
``output``, ``address``, ``resume`` and ``num_cpus`` plus the user's ``--set NAME=VALUE`` settings).

The file is run with ``__name__ == "__distillery__"`` so its ``if __name__ == "__main__":`` block (used
when the file is run with plain ``python``) does not start a second run. As for a script, the file's folder
comes first on ``sys.path``, so ``from my_ops import MyFilter`` finds a module beside it.

Ray's workers cannot import the file, nor the user's modules beside it (on a cluster, that folder is not
even there), so those modules are registered with Ray's cloudpickle to travel *by value*: an operator class
defined in them is shipped with the task that uses it. Project and installed packages travel by name.
"""
from __future__ import annotations

import sys
import sysconfig
import types
from pathlib import Path
from typing import Callable

from operators import ParameterError
from pipelines.dsl import Pipeline
from pipelines.errors import DistilleryError

MODULE = "__distillery__"
PROJECT_PACKAGES = ("operators", "pipelines", "teachers", "curricula", "students")


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
    folder = str(file.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # what ``python FILE.py`` does: modules beside the file are importable
    module = types.ModuleType(MODULE)
    module.__file__ = str(file.resolve())
    sys.modules[MODULE] = module  # dataclasses (and pickling) look a class's module up here
    namespace = module.__dict__
    try:
        exec(code, namespace)  # noqa: S102 - running the user's own pipeline file is the point
    except (DistilleryError, ParameterError) as exc:
        raise DistilleryError(f"{path}: {exc}") from exc
    finally:
        ship_by_value(Path(folder))
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


def user_modules(folder: Path) -> list[str]:
    """Names of the loaded modules that workers cannot import by name: the pipeline file's module and
    every module whose file lies under ``folder`` (the file's folder), except this project's packages
    and installed ones."""
    installed = {Path(p).resolve() for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}}
    names = [MODULE] if MODULE in sys.modules else []
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if name == MODULE or not where or name.partition(".")[0] in PROJECT_PACKAGES:
            continue
        resolved = Path(where).resolve()
        if folder in resolved.parents and not any(p in resolved.parents for p in installed):
            names.append(name)
    return names


def ship_by_value(folder: Path) -> list[str]:
    """Register the user's modules (``user_modules``) with Ray's cloudpickle by value; return their names."""
    from ray import cloudpickle

    names = user_modules(folder.resolve())
    for name in names:
        cloudpickle.register_pickle_by_value(sys.modules[name])
    return names
