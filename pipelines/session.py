"""Connecting to Ray, for the pipelines: ``ray_session`` (an embedded local Ray by default, capped, loopback
only, token auth; or the cluster given by ``--address`` / ``RAY_ADDRESS``).

The implementation is ``operators/ray_session.py``, in the lowest layer, so that students and curricula
start Ray exactly as the pipelines do; this module keeps the pipelines' imports in their own package.
"""
from __future__ import annotations

from operators.ray_session import (LOOPBACK, RayOptions, cluster_address, configure_local_environment, connect,
                                   ray_session, redact_address)

__all__ = ["LOOPBACK", "RayOptions", "cluster_address", "configure_local_environment", "connect", "ray_session",
           "redact_address"]
