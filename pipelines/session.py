"""Connecting to Ray: an embedded local Ray by default (capped, loopback only, token auth), or an
existing cluster given by ``--address`` / ``RAY_ADDRESS``.

Secrets (``RAY_AUTH_TOKEN``) are read from the environment and never logged or written to manifests.
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

    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is what makes Ray bind 127.0.0.1 (measured with ``ss``;
    ``_node_ip_address`` alone is not enough). A random per-process token is used unless the user set one.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
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


@contextmanager
def ray_session(address: str | None = None, options: RayOptions = RayOptions()) -> Iterator[str]:
    """Yield a connected Ray (reusing one already initialised in this process) and its redacted address."""
    address = cluster_address(address)
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        yield redact_address(address)
        return
    if not address:
        configure_local_environment()
    import ray
    import ray.data

    logging_level = logging.INFO if options.verbose else logging.WARNING
    if address:
        ray.init(address=address, logging_level=logging_level, log_to_driver=options.verbose)
    else:
        ray.init(num_cpus=options.num_cpus, object_store_memory=options.object_store_bytes,
                 include_dashboard=False, _node_ip_address=LOOPBACK, logging_level=logging_level,
                 log_to_driver=options.verbose)
    show_progress = options.verbose or os.isatty(2)
    if not options.verbose:  # Ray Data's INFO lines (and its note that bars are off) are noise for users
        logging.getLogger("ray.data").setLevel(logging.INFO if show_progress else logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = show_progress
    context.print_on_execution_start = options.verbose
    try:
        yield redact_address(address)
    finally:
        ray.shutdown()
