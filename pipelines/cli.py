"""The ``distillery`` command line: run, filter, dedup, classifier train, bias-report, submit, jobs, inspect,
report, and the commands of teachers, students and curricula (their ``cli`` modules).

User mistakes (bad paths, bad parameters, bad input data) print one line starting with ``error:`` and
exit 2; ``--debug`` (before or after the command) shows the traceback. Anything else is a bug and exits 1;
``submit --wait --timeout`` that runs out exits 124. One convention across commands: what a command writes is
``-o/--output``, ``--json`` is a switch, and each ``--set`` says in its help which names it takes.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path

from operators import ParameterError
from pipelines.errors import DistilleryError
from pipelines.terminal import printable

WORKFLOW_SET_HELP = ("a setting of a workflow file: a keyword parameter of its 'workflow' function other than "
                     "output/address/resume/num_cpus, e.g. size=full or seeds=0,1,2 for pipelines/flagship.py "
                     "(a file that defines a Pipeline takes none; repeatable)")
RESUME_HELP = ("reuse the finished stages of an earlier run into the same output whose config and input data "
               "(by content) are unchanged; without it every stage runs again")
WAIT_TIMEOUT_EXIT = 124  # submit --wait --timeout ran out (as timeout(1)); the job is still running


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distillery", description="LLM training-data pipelines on Ray.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a pipeline file on Ray (embedded local Ray by default)")
    run.add_argument("pipeline", help="a Python file that defines a Pipeline")
    run.add_argument("-o", "--output", help="output directory (overrides the pipeline's write_parquet)")
    run.add_argument("--address", help="an existing Ray cluster (default: RAY_ADDRESS, else embedded local Ray)")
    run.add_argument("--resume", action="store_true", help=RESUME_HELP)
    run.add_argument("--num-cpus", type=int, help="CPU cap for the embedded local Ray")
    run.add_argument("--verbose", action="store_true", help="Ray's logs and progress bars")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help=WORKFLOW_SET_HELP)

    filters = commands.add_parser("filter", help="run named operators over a Parquet input (no pipeline file)")
    filters.add_argument("input", help="Parquet file, directory or glob")
    filters.add_argument("-o", "--output", required=True, help="output directory")
    filters.add_argument("--ops", required=True, help="comma-separated operator names (class names in snake case, "
                         "e.g. normalize,length_filter,exact_dedup; see operators/registry.py), applied in order")
    filters.add_argument("--set", action="append", default=[], metavar="OP.PARAM=VALUE",
                         help="a parameter of an operator named in --ops: OP is its --ops name, PARAM a field of its "
                              "class, VALUE read as JSON else as a string, e.g. length_filter.min_chars=100 "
                              "(repeatable)")
    filters.add_argument("--address", help="an existing Ray cluster (default: embedded local Ray)")
    filters.add_argument("--resume", action="store_true", help=RESUME_HELP)
    filters.add_argument("--num-cpus", type=int)
    filters.add_argument("--verbose", action="store_true")

    dedup = commands.add_parser("dedup", help="remove near-duplicates (MinHash LSH) from a Parquet input")
    dedup.add_argument("input", help="Parquet file, directory or glob")
    dedup.add_argument("-o", "--output", required=True,
                       help="output directory (kept rows; _clusters/, _rejected/ and _lsh_index/ beside them)")
    dedup.add_argument("--reference", action="append", default=[], metavar="PATH",
                       help="an earlier dedup output (its _lsh_index/): rows near-duplicate to its documents are "
                            "removed too (cross-dump dedup); give it the same --ngram, --char-ngrams, --num-perm, "
                            "--bands/--rows and --seed (repeatable)")
    dedup.add_argument("--threshold", type=float, default=0.8, help="Jaccard similarity of duplicates")
    dedup.add_argument("--ngram", type=int, default=5, help="word n-gram size of the shingles")
    dedup.add_argument("--char-ngrams", type=int, metavar="N", help="use character N-grams instead of words")
    dedup.add_argument("--num-perm", type=int, default=128, help="MinHash permutations")
    dedup.add_argument("--bands", type=int, help="LSH bands (with --rows; default: chosen from the threshold)")
    dedup.add_argument("--rows", type=int, help="rows per band")
    dedup.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                       help="check candidate pairs' exact Jaccard (default) or only their signatures")
    dedup.add_argument("--seed", type=int, default=1)
    dedup.add_argument("--score-column", help="keep the highest-scoring document of each cluster")
    dedup.add_argument("--address")
    dedup.add_argument("--resume", action="store_true", help=RESUME_HELP)
    dedup.add_argument("--num-cpus", type=int)
    dedup.add_argument("--verbose", action="store_true")

    from pipelines.classifier_train import add_train_arguments

    classifier = commands.add_parser("classifier", help="train fastText classifiers (quality, domain, toxicity)")
    actions = classifier.add_subparsers(dest="classifier_command", required=True)
    add_train_arguments(actions.add_parser("train", help="train a fastText classifier from labelled Parquet"))

    bias = commands.add_parser("bias-report", help="representation and co-occurrence of demographic terms "
                                                   "(outputs of a bias_measure stage), before and after")
    bias.add_argument("before", help="Parquet output with a bias_counts column (BiasMeasure)")
    bias.add_argument("after", nargs="?", help="a second output to compare with (e.g. after rebalancing)")
    bias.add_argument("--json", action="store_true")

    submit = commands.add_parser("submit", help="submit a pipeline file to a Ray cluster as a job")
    submit.add_argument("pipeline")
    submit.add_argument("--address", required=True, help="the cluster's dashboard, e.g. http://HEAD:8265")
    submit.add_argument("-o", "--output", help="output directory as seen from the cluster")
    submit.add_argument("--resume", action="store_true", help=RESUME_HELP)
    submit.add_argument("--wait", action="store_true", help="wait for the job to end and print its logs")
    submit.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="with --wait: stop waiting after SECONDS (default: no limit); the job is left running, "
                             f"its id printed, and the exit code is {WAIT_TIMEOUT_EXIT}")
    submit.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help=WORKFLOW_SET_HELP + "; passed on to the job")

    jobs = commands.add_parser("jobs", help="status, logs or stop of a submitted job")
    jobs.add_argument("action", choices=["status", "logs", "stop"])
    jobs.add_argument("job_id")
    jobs.add_argument("--address", required=True)

    inspect = commands.add_parser("inspect", help="summarise a Parquet output (rows, schema, rejects, manifest)")
    inspect.add_argument("path")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.add_argument("--samples", type=int, default=3)

    report = commands.add_parser("report", help="an HTML report of a run folder: funnel, rejects, scores, clusters, "
                                                "bias, synthetic samples, mixture, training curves, evaluation")
    report.add_argument("run_dir", help="a folder holding pipeline outputs, training runs and evaluations")
    report.add_argument("-o", "--output", required=True, help="the HTML file to write, e.g. report.html")

    for module in _command_groups():  # teachers, students, curricula: each adds its own sub-commands
        module.add_commands(commands)
    _debug_after_every_command(parser)
    return parser


def _debug_after_every_command(parser: argparse.ArgumentParser) -> None:
    """Accept ``--debug`` after any (sub-)command too: ``distillery inspect X --debug``. SUPPRESS keeps a
    sub-command that was not given it from overwriting the top-level value."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():
                if "--debug" not in sub._option_string_actions:
                    sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
                _debug_after_every_command(sub)


def _command_groups() -> list:
    """The packages whose ``cli`` module adds commands (``add_commands(subparsers)``, each parser setting
    ``handler=fn(args) -> int``) and names its user-error types (``USER_ERRORS``). Imported lazily: a
    group's ``cli`` module must stay light (no torch or vLLM import at its top)."""
    import importlib

    groups = []
    for name in ("teachers", "students", "curricula"):
        try:
            groups.append(importlib.import_module(f"{name}.cli"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{name}.cli":
                raise
    return groups


def _run(args: argparse.Namespace) -> int:
    from pipelines.dsl import Pipeline
    from pipelines.loader import load_pipeline

    loaded = load_pipeline(args.pipeline)
    if isinstance(loaded, Pipeline):
        if args.set:
            raise DistilleryError(f"--set: {args.pipeline} defines a Pipeline, which takes no settings "
                                  "(only a 'workflow' function does)")
        return _execute(loaded, args)
    settings = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise DistilleryError(f"--set {item!r}: expected NAME=VALUE, e.g. size=full")
        settings[name] = value
    _check_settings(loaded, settings, args.pipeline)
    started = time.perf_counter()
    result = loaded(output=args.output, address=args.address, resume=args.resume, num_cpus=args.num_cpus, **settings)
    print(workflow_summary(args.pipeline, result, args.output, time.perf_counter() - started))
    return 0


def workflow_summary(path: str, result, output: str | None, seconds: float) -> str:
    """The last line of a workflow run, as a pipeline run's first: name, steps, seconds, output folder. A
    workflow's returned dict names its steps in ``steps`` (a list or count) or ``seconds`` (step -> seconds),
    and its folder in ``output``."""
    result = result if isinstance(result, dict) else {}
    steps = result.get("steps", result.get("seconds"))
    count = steps if isinstance(steps, int) else len(steps) if isinstance(steps, (dict, list, tuple)) else None
    folder = result.get("output") or output or "(the workflow's default)"
    return (f"workflow {Path(path).stem!r}: {'' if count is None else f'{count} steps '}"
            f"in {seconds:.1f} s, output {folder}")


def _check_settings(workflow, settings: dict, path: str) -> None:
    import inspect

    known = [n for n in inspect.signature(workflow).parameters if n not in ("output", "address", "resume", "num_cpus")]
    for name in settings:
        if name not in known:
            raise DistilleryError(f"--set {name}: {path}'s workflow has no setting {name!r} (settings: {', '.join(known)})")


def _filter(args: argparse.Namespace) -> int:
    from operators.registry import build, parse_ops, parse_settings
    from pipelines.dsl import Pipeline

    names = parse_ops(args.ops)
    pipeline = Pipeline("filter").read_parquet(args.input)
    for op in build(names, parse_settings(args.set)):
        add = {"map": pipeline.map, "filter": pipeline.filter, "dedup": pipeline.dedup, "line_dedup": pipeline.dedup}
        pipeline = add[op.kind](op)
    return _execute(pipeline.write_parquet(args.output), args)


def _dedup(args: argparse.Namespace) -> int:
    from operators import MinHashDedup
    from pipelines.dsl import Pipeline

    op = MinHashDedup(threshold=args.threshold, ngram=args.char_ngrams or args.ngram,
                      char_ngrams=args.char_ngrams is not None, num_perm=args.num_perm, bands=args.bands,
                      rows=args.rows, verify=args.verify, seed=args.seed, score_column=args.score_column,
                      reference=tuple(args.reference))
    return _execute(Pipeline("dedup").read_parquet(args.input).dedup(op).write_parquet(args.output), args)


def _classifier(args: argparse.Namespace) -> int:
    from pipelines.classifier_train import run_train

    return run_train(args)


def _bias_report(args: argparse.Namespace) -> int:
    from pipelines.bias_report import bias_report, format_bias_report

    report = bias_report(args.before, args.after)
    print(json.dumps(report, indent=2, default=str) if args.json else format_bias_report(report))
    return 0


def _execute(pipeline, args: argparse.Namespace) -> int:
    from pipelines.runner import run_pipeline

    manifest = run_pipeline(pipeline, output=getattr(args, "output", None), address=args.address,
                            resume=args.resume, num_cpus=args.num_cpus, verbose=args.verbose)
    print(f"pipeline {manifest['pipeline']!r}: {manifest['input']['rows']:,} rows in -> "
          f"{manifest['output']['rows']:,} kept, {manifest['accounting']['rows_rejected']:,} rejected "
          f"in {manifest['seconds']:.1f} s{' (resumed)' if manifest['resumed'] else ''}")
    for stage in manifest["stages"]:
        note = " (reused)" if stage["skipped"] else ""
        shown = list(stage.get("metrics", {}).items())
        metrics = "".join(f"  {k}={v:,}" for k, v in shown[:6]) + (f"  (+{len(shown) - 6} more)" if len(shown) > 6 else "")
        if stage["kind"] == "generate":
            note += f"  (sources: {stage['sources_kept']:,} with kept rows, {stage['sources_rejected']:,} without)"
        print(f"  {stage['name']:<18} {stage['rows_in']:>9,} -> {stage['rows_out']:>9,}  "
              f"rejected {stage['rows_rejected']:>8,}{note}{metrics}")
    for stage in manifest["stages"]:
        if "plan" in stage:
            facts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in stage["plan"].items() if isinstance(v, int))
            print(f"  {stage['name']}: {facts}")
    print(f"output:   {manifest['output']['path']}")
    print(f"rejects:  {manifest['output']['path']}/_rejected/")
    print(f"manifest: {manifest['output']['path']}/_manifest.json")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from pipelines import jobs

    if args.timeout is not None and (not args.wait or args.timeout <= 0):
        raise DistilleryError(f"--timeout {args.timeout:g}: give a positive number of seconds, with --wait")
    job_id = jobs.submit(args.pipeline, args.address, output=args.output, resume=args.resume, settings=args.set)
    print(f"submitted job {job_id} to {args.address}", flush=True)
    if not args.wait:
        print(f"follow it with: distillery jobs status {job_id} --address {args.address}")
        return 0
    try:
        state = jobs.wait(args.address, job_id, timeout_s=math.inf if args.timeout is None else args.timeout)
    except DistilleryError:
        if args.timeout is None or jobs.status(args.address, job_id) in jobs.TERMINAL:
            raise  # not the --timeout: the job server failed to answer
        print(f"error: job {job_id}: still running after {args.timeout:g} s (--timeout); left running: "
              f"distillery jobs status|logs|stop {job_id} --address {args.address}", file=sys.stderr)
        return WAIT_TIMEOUT_EXIT
    print(jobs.logs(args.address, job_id), end="")
    print(f"job {job_id}: {state}")
    return 0 if state == "SUCCEEDED" else 1


def _jobs(args: argparse.Namespace) -> int:
    from pipelines import jobs

    if args.action == "status":
        print(jobs.status(args.address, args.job_id))
    elif args.action == "logs":
        print(jobs.logs(args.address, args.job_id), end="")
    else:
        print("stopped" if jobs.stop(args.address, args.job_id) else "not running")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from pipelines.inspection import format_report, inspect_path

    report = inspect_path(args.path, samples=args.samples)
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    return 0


def _report(args: argparse.Namespace) -> int:
    from pipelines.report import write_html_report

    report = write_html_report(args.run_dir, args.output)
    found = {k: len(report[k]) for k in ("pipelines", "training", "mixtures") if report[k]}
    rows = len(report["evaluation"])
    print(f"{args.output}: " + ", ".join(f"{n} {k}" for k, n in found.items())
          + (f", {rows} evaluation rows" if rows else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    builtin = {"run": _run, "filter": _filter, "dedup": _dedup, "classifier": _classifier,
               "bias-report": _bias_report, "submit": _submit, "jobs": _jobs, "inspect": _inspect, "report": _report}
    handler = builtin.get(args.command) or args.handler
    user_errors = (DistilleryError, ParameterError) + tuple(
        error for module in _command_groups() for error in getattr(module, "USER_ERRORS", ()))
    try:
        return handler(args)
    except user_errors as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {printable(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user mistake: say so, keep the traceback behind --debug
        if args.debug:
            traceback.print_exc()
        first = printable(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
        print(f"error: unexpected {type(exc).__name__}: {first} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
