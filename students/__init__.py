"""Students: PyTorch models (dense, MoE, long-context) trained and evaluated on the curriculum stream.

model.py (Student, ModelConfig), moe.py, rope.py, fused_ce.py (output projection + loss), data.py (Parquet
token streams), train.py + checkpoint.py, distill.py (teacher records + loss), longctx.py (passkey, perplexity
by position, context extension), evaluate.py, export.py (Hugging Face folder), distributed.py (Ray Train),
cli.py. Import the submodules directly; this package imports nothing heavy.
"""
