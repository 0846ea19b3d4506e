"""Why ``students/fused_ce.py`` reuses one workspace: fresh large tensors against reused ones on the CPU, and
the fused output projection + cross-entropy against the plain one, side by side in one run.

One thread, fp32, the student benchmark's shapes (hidden 256, SmolLM2's 49,152 vocabulary, 2,048 tokens; the
allocation rows use one 1,024-row chunk). Competitors alternate round by round; medians in milliseconds.

    .venv/bin/python benchmarks/fused_ce_parts.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from students.fused_ce import linear_cross_entropy  # noqa: E402


def plain_loss(h, w, y):
    F.cross_entropy(h @ w.t(), y).backward()


def fused_loss(h, w, y):
    linear_cross_entropy(h, w, y)[0].backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    chunk, d, vocab, tokens = 1024, 256, 49152, 2048
    x, out = torch.randn(chunk, vocab), torch.empty(chunk, vocab)
    hc, w = torch.randn(chunk, d), torch.randn(vocab, d) * 0.02
    h = torch.randn(tokens, d, requires_grad=True)
    wg = w.clone().requires_grad_()
    y = torch.randint(0, vocab, (tokens,))
    cases = {
        "fresh tensor: x.clone()": lambda: x.clone(),
        "reused tensor: out.copy_(x)": lambda: out.copy_(x),
        "logits into a fresh tensor: h @ W.T": lambda: hc @ w.t(),
        "logits into a reused tensor: mm(out=)": lambda: torch.mm(hc, w.t(), out=out),
        "loss fwd+bwd, plain: cross_entropy(h @ W.T)": lambda: plain_loss(h, wg, y),
        "loss fwd+bwd, fused: linear_cross_entropy": lambda: fused_loss(h, wg, y),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(args.rounds + 1):  # round 0 warms up
        for name, case in cases.items():
            started = time.perf_counter()
            case()
            if r:
                times[name].append(time.perf_counter() - started)
            h.grad = wg.grad = None
    print(f"torch {torch.__version__}, 1 thread, median of {args.rounds} rounds\n\n| case | ms |\n|---|---:|")
    for name, values in times.items():
        print(f"| {name} | {1000 * statistics.median(values):,.1f} |")


if __name__ == "__main__":
    main()
