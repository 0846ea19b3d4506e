"""Training throughput of our students against transformers at identical configuration, on the CPU.

For a dense model (vs ``LlamaForCausalLM``) and a MoE model (vs ``MixtralForCausalLM``) it exports our model
and loads the very same weights into transformers (so MoE routing is identical), then alternates timed
training steps (forward, backward, AdamW step) of the two in one process and reports tokens/s side by side
(median of the timed rounds) and the ratio ours / transformers. Both use fp32 and scaled-dot-product
attention; transformers computes its MoE auxiliary loss too (``output_router_logits``), as ours does.

    .venv/bin/python benchmarks/student_throughput.py                 # dense + moe, 1 thread, 6 rounds
    .venv/bin/python benchmarks/student_throughput.py --threads 2 --rounds 10 --which moe
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from students.export import export_hf  # noqa: E402
from students.model import ModelConfig, Student  # noqa: E402

CONFIGS = {
    "dense": dict(vocab_size=49152, d_model=256, n_layers=4, n_heads=8, n_kv_heads=2, max_seq_len=256),
    "moe": dict(vocab_size=49152, d_model=256, n_layers=4, n_heads=8, n_kv_heads=2, max_seq_len=256,
                n_experts=8, top_k=2, ffn_hidden=384),
}


def ours_step(model, optimizer, ids):
    out = model(ids[:, :-1], labels=ids[:, 1:])
    loss = out.loss + (out.aux_loss if out.aux_loss is not None else 0)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def hf_step(model, optimizer, ids):
    moe = hasattr(model.config, "num_local_experts")
    out = model(input_ids=ids[:, :-1], labels=ids[:, 1:], output_router_logits=moe)
    out.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return out.loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", default="dense,moe")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=6, help="timed steps per model (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM
    from teachers.smollm2 import smollm2_dir

    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch} x seq {args.seq}, fp32, "
          f"{args.rounds} timed steps each (median)")
    rows = []
    for name in args.which.split(","):
        torch.manual_seed(0)
        cfg = ModelConfig(**CONFIGS[name], aux_loss_coef=0.01, z_loss_coef=0.0)
        ours = Student(cfg)
        with tempfile.TemporaryDirectory() as tmp:
            hf = AutoModelForCausalLM.from_pretrained(export_hf(ours, Path(tmp) / name, smollm2_dir()),
                                                      dtype=torch.float32, attn_implementation="sdpa")
        hf.config.router_aux_loss_coef = 0.01
        ours.train(), hf.train()
        opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
        opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4)
        ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1))
        times = {"ours": [], "transformers": []}
        for r in range(args.rounds + 1):
            for label, step, model, opt in (("ours", ours_step, ours, opt_ours), ("transformers", hf_step, hf, opt_hf)):
                t0 = time.perf_counter()
                step(model, opt, ids)
                if r:
                    times[label].append(time.perf_counter() - t0)
        tokens = args.batch * args.seq
        t_ours, t_hf = (tokens / statistics.median(times[k]) for k in ("ours", "transformers"))
        rows.append((name, ours.num_params() / 1e6, t_ours, t_hf))
    print(f"\n| model | params | ours tokens/s | transformers tokens/s | ratio |\n|---|---:|---:|---:|---:|")
    for name, params, a, b in rows:
        print(f"| {name} | {params:.1f}M | {a:,.0f} | {b:,.0f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
