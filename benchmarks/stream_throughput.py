"""Does the curriculum stream keep a CPU training step of the default student fed? (issue 7, item 5)

One run measures, one after the other on the same machine:
  * the stream: ``CurriculumStream`` over the bundled sample (five domains by ``source``, temperature
    mixture, SmolLM2's tokenizer, inline tokenisation, seq 256, batch 8), tokens/s of batches delivered,
    with and without a difficulty curriculum and document ids; start-up (index build) reported apart;
  * the consumer: forward + backward + AdamW step of the default student (students.model.Student,
    width 256, 4 layers, 8 heads, 2 KV heads, vocab 49152) on those same batches, tokens/s;
and prints stream tokens/s / training tokens/s (target >= 5).

    .venv/bin/python benchmarks/stream_throughput.py [--batches 300] [--steps 8]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curricula import CurriculumStream, Difficulty, Temperature, split_by_source  # noqa: E402


def stream_rate(tokenizer_dir: Path, batches: int, seq_len: int, batch_size: int, **extra) -> tuple[float, float, list]:
    start = time.perf_counter()
    stream = CurriculumStream(split_by_source(REPO / "data" / "sample"), Temperature(2.0), tokenizer_dir,
                              seq_len=seq_len, batch_size=batch_size, seed=0, **extra)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    out = [stream.next_batch() for _ in range(batches)]
    seconds = time.perf_counter() - start
    return sum(b.num_tokens for b in out) / seconds, setup, out


def train_rate(batches: list, steps: int, warmup: int = 2) -> float:
    import torch

    from students.model import ModelConfig, Student

    torch.manual_seed(0)
    model = Student(ModelConfig(d_model=256, n_layers=4, n_heads=8, n_kv_heads=2, max_seq_len=1024))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    tokens, seconds = 0, 0.0
    for i, batch in enumerate(batches[:warmup + steps]):
        x, y = torch.from_numpy(batch.input_ids), torch.from_numpy(batch.labels)
        start = time.perf_counter()
        loss = model(x, labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            seconds += time.perf_counter() - start
            tokens += batch.num_tokens
    return tokens / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300, help="stream batches to time")
    parser.add_argument("--steps", type=int, default=8, help="training steps to time (after 2 warm-up steps)")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    import torch

    from teachers.smollm2 import smollm2_dir  # the benchmark may use teachers; curricula itself does not

    tok = smollm2_dir()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; seq {args.seq_len} x batch {args.batch_size}")
    plain, setup, batches = stream_rate(tok, args.batches, args.seq_len, args.batch_size)
    print(f"stream (temperature mixture, 5 domains): {plain:,.0f} tokens/s over {args.batches} batches "
          f"(start-up {setup:.2f} s, not counted)")
    curriculum, setup2, _ = stream_rate(tok, args.batches, args.seq_len, args.batch_size, document_ids=True,
                                        difficulty=Difficulty(column="length", full_at_tokens=200_000))
    print(f"stream (+ length curriculum, document ids): {curriculum:,.0f} tokens/s (start-up {setup2:.2f} s)")
    train = train_rate(batches, args.steps)
    print(f"default student training step (fwd+bwd+AdamW, fp32, CPU): {train:,.0f} tokens/s over {args.steps} steps")
    print(f"ratio stream / training: {plain / train:.1f}x (with curriculum: {curriculum / train:.1f}x); target >= 5x")
    return 0 if min(plain, curriculum) >= 5 * train else 1


if __name__ == "__main__":
    raise SystemExit(main())
