"""MFU of our students on one GPU (prepared for an H200; needs only PyTorch and, for --hf, transformers).

Trains a ~124M-parameter dense student (Llama-style, d 768, 12 layers, SmolLM2's 49k vocabulary, tied
embeddings) and a MoE student (8 experts, top-2, same attention) for a few timed steps each with bf16
autocast, FlashAttention through SDPA, the fused output-projection + cross-entropy, AdamW (fused) and
optionally ``torch.compile``, and reports tokens/s, model TFLOP/s and MFU against the GPU's dense bf16 peak
(H200/H100: 989 TFLOP/s). Model FLOPs per token: 6 x (non-embedding active params + output projection)
+ 12 x layers x width x sequence (PaLM, appendix B). With ``--hf`` it also times transformers'
``LlamaForCausalLM`` at the same configuration. Nothing is installed and nothing is downloaded.

    python benchmarks/gpu_student_mfu.py --out $OUT/mfu.json            # on the GPU machine (~3-5 min)
    python benchmarks/gpu_student_mfu.py --smoke                        # tiny, on the CPU: checks the script
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from students.evaluate import PEAK_BF16_TFLOPS, flops_per_token  # noqa: E402
from students.model import ModelConfig, Student  # noqa: E402

MODELS = {
    "dense-124M": dict(vocab_size=49152, d_model=768, n_layers=12, n_heads=12, n_kv_heads=4, ffn_hidden=2304),
    "moe-8x2": dict(vocab_size=49152, d_model=768, n_layers=12, n_heads=12, n_kv_heads=4, ffn_hidden=1024,
                    n_experts=8, top_k=2),
}
SMOKE = {
    "dense-124M": dict(vocab_size=512, d_model=64, n_layers=2, n_heads=2, n_kv_heads=1),
    "moe-8x2": dict(vocab_size=512, d_model=64, n_layers=2, n_heads=2, n_kv_heads=1, n_experts=4, top_k=2),
}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    return None


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_training(step, device, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t0) / steps


def run_ours(name, values, args, device):
    torch.manual_seed(0)
    cfg = ModelConfig(**values, max_seq_len=args.seq)
    model = Student(cfg).to(device)
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
    compute = model
    if args.compile:
        compute = torch.compile(model)
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with autocast:
            out = compute(ids[:, :-1], labels=ids[:, 1:])
        loss = out.loss + (out.aux_loss if out.aux_loss is not None else 0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = time_training(step, device, args.warmup, args.steps)
    return report(name, "ours" + (" +compile" if args.compile else ""), model, cfg, args, seconds, device)


def run_hf(name, values, args, device):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = ModelConfig(**values, max_seq_len=args.seq)
    hf_cfg = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ffn_hidden,
                         num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                         num_key_value_heads=cfg.n_kv_heads, max_position_embeddings=args.seq,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(hf_cfg).to(device)
    model.config._attn_implementation = "sdpa"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with autocast:
            out = model(input_ids=ids[:, :-1], labels=ids[:, 1:])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = time_training(step, device, args.warmup, args.steps)
    return report(name, "transformers", Student(cfg), cfg, args, seconds, device)


def report(name, impl, model, cfg, args, seconds, device):
    tokens_per_s = args.batch * args.seq / seconds
    tflops = tokens_per_s * flops_per_token(model, args.seq) / 1e12
    peak = peak_tflops(device, args.peak_tflops)
    row = {"model": name, "impl": impl, "params_M": round(model.num_params() / 1e6, 1),
           "active_params_M": round(model.num_params(active=True) / 1e6, 1), "batch": args.batch, "seq": args.seq,
           "step_s": round(seconds, 4), "tokens_per_s": round(tokens_per_s), "model_tflops": round(tflops, 2),
           "mfu": round(tflops / peak, 4) if peak else None,
           "max_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU, 2 steps: checks the script")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--hf", action="store_true", help="also time transformers' LlamaForCausalLM (dense)")
    parser.add_argument("--only", default="", help="comma-separated subset of " + ",".join(MODELS))
    parser.add_argument("--peak-tflops", type=float)
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.seq, args.warmup, args.steps, args.compile = 2, 64, 1, 2, False
        device = torch.device("cpu")
    else:
        if not torch.cuda.is_available():
            sys.exit("no GPU: use --smoke for the CPU check")
        device = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = True
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}",
          flush=True)
    models = SMOKE if args.smoke else MODELS
    rows = []
    for name, values in models.items():
        if args.only and name not in args.only.split(","):
            continue
        try:
            rows.append(run_ours(name, values, args, device))
        except Exception as exc:  # keep the other measurements if one configuration fails (e.g. compile)
            print(json.dumps({"model": name, "impl": "ours", "error": f"{type(exc).__name__}: {exc}"[:500]}))
        if args.hf and not values.get("n_experts"):
            rows.append(run_hf(name, values, args, device))
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    print("\n| model | impl | params | active | tokens/s | model TFLOP/s | MFU |\n|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "n/a"
        print(f"| {r['model']} | {r['impl']} | {r['params_M']}M | {r['active_params_M']}M | {r['tokens_per_s']:,} | "
              f"{r['model_tflops']} | {mfu} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
