"""Curricula: domain mixtures and difficulty schedules streamed from Parquet into training.
Empty until its issue lands; see ../shared/DESIGN.md."""
