"""``distillery students train | eval | export``. Kept light: torch and the students' modules are imported
inside the handlers, so ``distillery --help`` stays fast.

    distillery students train --data tokens.parquet --output runs/s1 --set model.d_model=128 --steps 200
    distillery students train --data long.parquet --output runs/s1-long --extend-from runs/s1 --seq-len 1024 \
        --rope-scaling yarn
    distillery students eval runs/s1 runs/s1-long --data heldout.parquet --passkey-lengths 256,512 --throughput
    distillery students export runs/s1 --output exports/s1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from curricula.errors import CurriculumConfigError
from operators.tokenizer import TokenizerError, read_tokenizer
from students.errors import ConfigError, TrainingDiverged

USER_ERRORS = (ConfigError, CurriculumConfigError, TokenizerError, TrainingDiverged)
# The fields ``--set`` takes (students/model.py ModelConfig, students/train.py TrainConfig, the data keys of
# ``_train``); a test checks these names against the dataclasses.
SET_FIELDS = {
    "model": ("d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_hidden", "vocab_size", "rope_theta", "alibi",
              "tie_embeddings", "n_experts", "top_k", "capacity_factor", "aux_loss_coef"),
    "train": ("steps", "lr", "min_lr_ratio", "warmup_steps", "schedule", "decay_fraction", "weight_decay",
              "grad_clip", "grad_accum", "checkpoint_every", "seed", "device", "precision", "compile"),
    "data": ("path", "batch_size", "seq_len", "seed"),
}
SET_HELP = ("override a config field: SECTION.FIELD=VALUE, VALUE read as JSON else as a string; "
            + "; ".join(f"{section}.{{{','.join(fields)}{',...' if section != 'data' else ''}}}"
                        for section, fields in SET_FIELDS.items())
            + " (all fields of ModelConfig and TrainConfig), e.g. model.n_experts=8 or train.schedule=wsd (repeatable)")


def add_commands(commands) -> None:
    students = commands.add_parser("students", help="train, evaluate and export student models")
    actions = students.add_subparsers(dest="students_command", required=True)

    train = actions.add_parser("train", help="train a dense or MoE student on a token stream")
    train.add_argument("--data", help="Parquet of documents: input_ids (list<int>) or text, + domain/source")
    train.add_argument("--distill", help="Parquet of teacher distillation records (students/distill.py)")
    train.add_argument("-o", "--output", required=True, help="run folder (checkpoints, metrics.jsonl, config.json)")
    train.add_argument("--config", help="JSON or YAML file with sections model, train, data")
    train.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                       help=SET_HELP)
    train.add_argument("--steps", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seq-len", type=int)
    train.add_argument("--workers", type=int, default=1, help="Ray Train DDP workers (each reads its own shard)")
    train.add_argument("--extend-from", help="a trained run whose context to extend to --seq-len")
    train.add_argument("--rope-scaling", default="linear", choices=["linear", "ntk", "yarn"])
    train.add_argument("--resume", action="store_true",
                       help="continue from the run's latest checkpoint (its configs and data fingerprint must match; "
                            "without --resume the run starts over), as for pipelines")
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
    ev.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    ev.add_argument("-o", "--output", metavar="FILE", help="also write the results as JSON to FILE")
    ev.set_defaults(handler=_eval)

    ex = actions.add_parser("export", help="write a run as a Hugging Face Llama/Mixtral folder")
    ex.add_argument("run")
    ex.add_argument("-o", "--output", required=True, help="the Hugging Face folder to write")
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
    resume = {"resume": args.resume, "data_fingerprint": _data_fingerprint(args.distill or args.data or data["path"],
                                                                            batch_size, seq_len, data.get("seed", 0),
                                                                            args.extend_from)}
    if args.extend_from:
        from students.longctx import extend_context
        result = extend_context(args.extend_from, args.output, stream, seq_len, train_cfg, args.rope_scaling, **resume)
    elif args.workers > 1:
        from students.distributed import train_distributed
        result = train_distributed(ModelConfig.from_dict(model_values), train_cfg, args.data or data["path"],
                                   args.output, workers=args.workers, batch_size=batch_size, seq_len=seq_len, **resume)
    else:
        from students.train import train
        result = train(ModelConfig.from_dict(model_values), train_cfg, stream, args.output, **resume)
    print(f"{args.output}: {result.step} steps, last loss {result.losses[-1] if result.losses else float('nan'):.4f}, "
          f"checkpoint {result.last_checkpoint}")
    return 0


def _data_fingerprint(path: str, batch_size: int, seq_len: int, seed: int, extend_from: str | None) -> str:
    """What a resumed run must have been trained on: the data's content (not its path), the batch layout and,
    for a context extension, the weights it started from."""
    from operators.fingerprint import dataset_fingerprint, fingerprint
    from students.checkpoint import latest_checkpoint

    if not Path(path).exists():
        raise ConfigError(f"data: {path}: no such file or directory")
    parts = [dataset_fingerprint(path), f"batch{batch_size}", f"seq{seq_len}", f"seed{seed}"]
    source = latest_checkpoint(extend_from) if extend_from else None
    if source is not None:
        parts.append(fingerprint(source / "model.safetensors")[:16])
    return "-".join(parts)


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
        tok = read_tokenizer(smollm2_dir())
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
    print(json.dumps(rows, indent=1) if args.json else comparison_table(rows))
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=1))
    return 0


def _export(args: argparse.Namespace) -> int:
    from students.evaluate import load_run
    from students.export import export_hf

    model = load_run(args.run)
    out = export_hf(model, args.output, tokenizer_dir=args.tokenizer, dtype=args.dtype)
    print(f"{out}: {'MixtralForCausalLM' if model.cfg.is_moe else 'LlamaForCausalLM'} + safetensors + tokenizer")
    return 0
