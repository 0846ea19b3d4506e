"""Students: PyTorch models (dense, MoE, long-context) trained and evaluated on the curriculum stream.
Empty until its issue lands; see ../shared/DESIGN.md."""
