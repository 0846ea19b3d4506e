"""Connecting to Ray: an embedded local Ray by default (capped, loopback only, token auth), or an
existing cluster given by ``--address`` / ``RAY_ADDRESS``.

It lives in curricula, the lowest layer that runs Ray (its Ray Data passes; operators never import Ray),
so that every package that starts Ray (the pipelines runner and flagship, ``students train --workers N``,
curricula's passes) sets it up the same way. Ray is imported only inside the functions. Secrets (``RAY_AUTH_TOKEN``) are read from the environment and never
logged or written to manifests.
"""
from __future__ import annotations

import logging
import os
import secrets
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
# Ray binds every port on loopback only when this is "0" (measured with ``ss``: ``_node_ip_address`` alone is
# not enough). Ray reads it once, into ``ray._private.ray_constants.ENABLE_RAY_CLUSTER``, when imported.
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass(frozen=True)
class RayOptions:
    """Caps for the embedded local Ray (ignored when joining a cluster)."""

    num_cpus: int | None = None                 # default: all local cores
    object_store_bytes: int | None = 2 * 1024**3
    verbose: bool = False                       # Ray's INFO logs and Ray Data's progress bars


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: the argument, else ``RAY_ADDRESS``, else None (embedded local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def redact_address(address: str | None) -> str:
    """An address fit for a manifest: user:password@ and query strings removed."""
    if not address:
        return "embedded"
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}" if "://" in address else f"{host}{port}"


def configure_local_environment() -> None:
    """Environment for an embedded Ray: every port on loopback, token auth, no usage stats.

    The loopback setting is forced (a user's ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1`` would make the embedded
    Ray listen on every interface) and also applied to an already imported Ray, which read it at import.
    A random per-process token is used unless the user set one.
    """
    os.environ[LOOPBACK_ONLY_ENV] = "0"  # inherited by the raylet, GCS, dashboard agent and workers
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    if os.environ["RAY_AUTH_MODE"] == "token" and not (
            os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    if "ray._raylet" in sys.modules:
        # Ray reads its auth settings when imported; an embedding program (a notebook, a test) may have
        # imported it before us, so make it read them again.
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


def connect(address: str | None = None, options: RayOptions = RayOptions()) -> bool:
    """Connect this process to Ray: the Ray already initialised here, else the cluster at ``address`` /
    ``RAY_ADDRESS``, else a new embedded one on loopback. Return True when this call started it."""
    address = cluster_address(address)
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return False
    if not address:
        configure_local_environment()
    import ray
    import ray.data

    logging_level = logging.INFO if options.verbose else logging.WARNING
    if address:
        ray.init(address=address, logging_level=logging_level, log_to_driver=options.verbose)
    else:  # "local": a new Ray, never one a `ray start` on this machine left in /tmp/ray/ray_current_cluster
        ray.init(address="local", num_cpus=options.num_cpus, object_store_memory=options.object_store_bytes,
                 include_dashboard=False, _node_ip_address=LOOPBACK, logging_level=logging_level,
                 log_to_driver=options.verbose)
        node_ip = ray.util.get_node_ip_address()
        if node_ip != LOOPBACK:  # a bug of ours or a Ray change: never run a Ray that listens off loopback
            ray.shutdown()
            raise RuntimeError(f"the embedded Ray started on {node_ip}, not on loopback {LOOPBACK}")
    show_progress = options.verbose or os.isatty(2)
    if not options.verbose:  # Ray Data's INFO lines (and its note that bars are off) are noise for users
        logging.getLogger("ray.data").setLevel(logging.INFO if show_progress else logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = show_progress
    context.print_on_execution_start = options.verbose
    return True


@contextmanager
def ray_session(address: str | None = None, options: RayOptions = RayOptions()) -> Iterator[str]:
    """Yield a connected Ray (``connect``) and its redacted address; shut it down after if this started it."""
    started = connect(address, options)
    try:
        yield redact_address(cluster_address(address))
    finally:
        if started:
            import ray

            ray.shutdown()
