"""``distillery curricula preview MIXTURE.yaml|.py``: run a curriculum for a while and print planned vs
realised domain shares per window. Kept light: the stream's modules load inside the handler."""
from __future__ import annotations

import argparse
import json

from curricula.errors import CurriculumConfigError
from operators.tokenizer import TokenizerError

USER_ERRORS = (CurriculumConfigError, TokenizerError)


def add_commands(commands) -> None:
    curricula = commands.add_parser("curricula", help="domain mixtures and difficulty curricula")
    actions = curricula.add_subparsers(dest="curricula_command", required=True)
    preview = actions.add_parser("preview", help="stream a mixture (YAML spec or Python file) and print planned vs "
                                 "realised domain proportions")
    preview.add_argument("mixture", help="YAML spec (see curricula/config.py) or a .py defining stream/make_stream()")
    preview.add_argument("--sequences", type=int, default=5000, help="sequences to draw (default 5000)")
    preview.add_argument("--window", type=int, default=1000, help="sequences per reported window (default 1000)")
    preview.add_argument("--json", action="store_true", help="print the records as JSON lines")
    preview.set_defaults(handler=_preview)


def _preview(args: argparse.Namespace) -> int:
    from curricula.config import stream_from_file
    from curricula.selector import AdherenceLog

    if args.sequences < 1 or args.window < 1:
        raise CurriculumConfigError("--sequences/--window: must be >= 1")
    stream = stream_from_file(args.mixture)
    stream.log = AdherenceLog(stream.names, every=args.window)
    drawn = 0
    while drawn < args.sequences:
        batch = stream.next_batch()
        if batch is None:
            break
        drawn += len(batch.domains)
    stream.log.flush(stream.tokens)
    if args.json:
        for record in stream.log.records:
            print(json.dumps(record))
        return 0
    print(json.dumps(stream.describe()["schedule"]))
    width = max(len(n) for n in stream.names)
    print(f"{'sequences':>10} {'tokens':>12}  " + "  ".join(f"{n:>{max(width, 15)}}" for n in stream.names))
    for r in stream.log.records:
        cells = [f"{r['planned'][n]:.3f}/{r['realised'][n]:.3f}" for n in stream.names]
        print(f"{r['sequences']:>10,} {r['tokens']:>12,}  " + "  ".join(f"{c:>{max(width, 15)}}" for c in cells))
    worst = max((r["max_abs_error"] for r in stream.log.records), default=0.0)
    print(f"cells are planned/realised shares per window of {args.window} sequences; worst |error| {worst:.4f}")
    return 0
