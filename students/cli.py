"""``distillery students train | eval | export``. Kept light: torch and the students' modules are imported
inside the handlers, so ``distillery --help`` stays fast.

    distillery students train --data tokens.parquet --out runs/s1 --set model.d_model=128 --steps 200
    distillery students train --data long.parquet --out runs/s1-long --extend-from runs/s1 --seq-len 1024 \
        --rope-scaling yarn
    distillery students eval runs/s1 runs/s1-long --data heldout.parquet --passkey-lengths 256,512 --throughput
    distillery students export runs/s1 --out exports/s1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from students.errors import ConfigError, TrainingDiverged

USER_ERRORS = (ConfigError, TrainingDiverged)


def add_commands(commands) -> None:
    students = commands.add_parser("students", help="train, evaluate and export student models")
    actions = students.add_subparsers(dest="students_command", required=True)

    train = actions.add_parser("train", help="train a dense or MoE student on a token stream")
    train.add_argument("--data", help="Parquet of documents: input_ids (list<int>) or text, + domain/source")
    train.add_argument("--distill", help="Parquet of teacher distillation records (students/distill.py)")
    train.add_argument("--out", required=True, help="run folder (checkpoints, metrics.jsonl, config.json)")
    train.add_argument("--config", help="JSON or YAML file with sections model, train, data")
    train.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                       help="override a field, e.g. model.n_experts=8 or train.schedule=wsd (repeatable)")
    train.add_argument("--steps", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seq-len", type=int)
    train.add_argument("--workers", type=int, default=1, help="Ray Train DDP workers (each reads its own shard)")
    train.add_argument("--extend-from", help="a trained run whose context to extend to --seq-len")
    train.add_argument("--rope-scaling", default="linear", choices=["linear", "ntk", "yarn"])
    train.add_argument("--no-resume", action="store_true", help="start over even if the run has a checkpoint")
    train.set_defaults(handler=_train)

    ev = actions.add_parser("eval", help="held-out perplexity per domain, passkey, MoE balance, tokens/s, MFU")
    ev.add_argument("runs", nargs="+", help="run folders or exported Hugging Face folders")
    ev.add_argument("--data", required=True, help="held-out Parquet (input_ids or text, + domain/source)")
    ev.add_argument("--batch-size", type=int, default=4)
    ev.add_argument("--seq-len", type=int, default=256)
    ev.add_argument("--batches", type=int, default=20, help="held-out batches to score")
    ev.add_argument("--passkey-lengths", default="", help="comma-separated prompt lengths, e.g. 256,512")
    ev.add_argument("--passkey-depths", default="0,0.5,1")
    ev.add_argument("--passkey-trials", type=int, default=2)
    ev.add_argument("--throughput", action="store_true", help="measure training tokens/s and MFU")
    ev.add_argument("--peak-tflops", type=float, help="device peak for MFU (known GPUs are detected)")
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ev.add_argument("--json", help="also write the results as JSON here")
    ev.set_defaults(handler=_eval)

    ex = actions.add_parser("export", help="write a run as a Hugging Face Llama/Mixtral folder")
    ex.add_argument("run")
    ex.add_argument("--out", required=True)
    ex.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ex.add_argument("--tokenizer", help="tokenizer folder (default: the prepared SmolLM2 folder)")
    ex.set_defaults(handler=_export)


def _load_config(path: str | None) -> dict:
    if not path:
        return {}
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml
        values = yaml.safe_load(text) or {}
    else:
        values = json.loads(text)
    unknown = sorted(set(values) - {"model", "train", "data"})
    if unknown:
        raise ConfigError(f"config: unknown section(s) {unknown}; expected model, train, data")
    return values


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, field = key.partition(".")
        if not sep or not dot or section not in ("model", "train", "data"):
            raise ConfigError(f"--set {item!r}: expected SECTION.FIELD=VALUE with SECTION model, train or data")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        config.setdefault(section, {})[field] = value
    return config


def _train(args: argparse.Namespace) -> int:
    from students.data import ParquetTokenStream
    from students.model import ModelConfig
    from students.train import TrainConfig

    config = apply_overrides(_load_config(args.config), args.set)
    data = config.get("data", {})
    train_values = config.get("train", {})
    for name in ("steps", "lr"):
        if getattr(args, name) is not None:
            train_values[name] = getattr(args, name)
    batch_size = args.batch_size or data.get("batch_size", 8)
    seq_len = args.seq_len or data.get("seq_len", 256)
    model_values = {"max_seq_len": seq_len, **config.get("model", {})}
    train_cfg = TrainConfig.from_dict(train_values)
    if args.distill:
        from students.distill import DistillStream
        stream = DistillStream(args.distill, batch_size, seq_len)
    elif args.data or data.get("path"):
        stream = ParquetTokenStream(args.data or data["path"], batch_size, seq_len, seed=data.get("seed", 0))
    else:
        raise ConfigError("data: give --data (token or text Parquet) or --distill (teacher records)")
    if args.extend_from:
        from students.longctx import extend_context
        result = extend_context(args.extend_from, args.out, stream, seq_len, train_cfg, args.rope_scaling)
    elif args.workers > 1:
        from students.distributed import train_distributed
        result = train_distributed(ModelConfig.from_dict(model_values), train_cfg, args.data or data["path"],
                                   args.out, workers=args.workers, batch_size=batch_size, seq_len=seq_len)
    else:
        from students.train import train
        result = train(ModelConfig.from_dict(model_values), train_cfg, stream, args.out, resume=not args.no_resume)
    print(f"{args.out}: {result.step} steps, last loss {result.losses[-1] if result.losses else float('nan'):.4f}, "
          f"checkpoint {result.last_checkpoint}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from students.data import ParquetTokenStream
    from students.evaluate import comparison_table, evaluate_model, load_run
    from students.train import pick_device

    device = pick_device(args.device)
    stream = ParquetTokenStream(args.data, args.batch_size, args.seq_len, loop=False, seed=1)
    batches = [b for _, b in zip(range(args.batches), stream)]
    passkey = None
    if args.passkey_lengths:
        from teachers.smollm2 import smollm2_dir
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(str(smollm2_dir() / "tokenizer.json"))
        passkey = {"encode": lambda s: tok.encode(s, add_special_tokens=False).ids,
                   "lengths": [int(x) for x in args.passkey_lengths.split(",")],
                   "depths": [float(x) for x in args.passkey_depths.split(",")], "trials": args.passkey_trials}
    rows = []
    for run in args.runs:
        if (Path(run) / "checkpoints").is_dir():
            model = load_run(run, str(device))
        elif (Path(run) / "config.json").is_file():
            from students.export import student_from_hf
            model = student_from_hf(run).to(device)
        else:
            raise ConfigError(f"runs: {run} is neither a training run nor a Hugging Face folder")
        throughput = ({"batch_size": args.batch_size, "seq_len": args.seq_len, "peak_tflops": args.peak_tflops}
                      if args.throughput else None)
        rows.append(evaluate_model(model, batches, name=Path(run).name, passkey=passkey, throughput=throughput))
    print(comparison_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def _export(args: argparse.Namespace) -> int:
    from students.evaluate import load_run
    from students.export import export_hf

    model = load_run(args.run)
    out = export_hf(model, args.out, tokenizer_dir=args.tokenizer, dtype=args.dtype)
    print(f"{out}: {'MixtralForCausalLM' if model.cfg.is_moe else 'LlamaForCausalLM'} + safetensors + tokenizer")
    return 0
