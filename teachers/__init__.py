"""Teachers: vLLM-hosted models that generate synthetic data (instructions, rewrites, QA, preference pairs,
logit-distillation records). Empty until its issue lands; see ../shared/DESIGN.md."""
