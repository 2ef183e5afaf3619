"""Fixtures for tests that build and run the real image.

An engine is found (``docker info``) or, on these machines, started with the shared
stand-in script (``../shared/tools/docker-standin.sh``: Debian's docker.io without a default
bridge, plus a local stand-in for the base image). When neither works every container test is
skipped with the reason. The image is built once per session as ``newsbot:test``; Docker's
layer cache makes later sessions fast. Containers run with ``--network host`` so the bot
reaches the in-process fakes on 127.0.0.1, or ``--network none`` when no network is needed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
STANDIN_SCRIPT = REPO.parent / "shared" / "tools" / "docker-standin.sh"
BASE_IMAGE = "python:3.11-slim-bookworm"
IMAGE = "newsbot:test"
BOT_UID = 10001
# The flags the docs recommend for production; every runtime test uses them.
HARDENED = [
    "--read-only",
    "--tmpfs",
    "/tmp",  # noqa: S108  (a tmpfs inside the container, not a host path)
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]
# Fast health timing for tests (production: 30 s / 20 s / 10 s / 3).
FAST_HEALTH = [
    "--health-interval",
    "2s",
    "--health-start-period",
    "2s",
    "--health-timeout",
    "8s",
    "--health-retries",
    "3",
]


def _docker_sync(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _engine_ready() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return _docker_sync("info", timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _base_image_present() -> bool:
    return _docker_sync("image", "inspect", BASE_IMAGE).returncode == 0


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """Make sure an engine (and the base image) is available, or skip."""
    if (not _engine_ready() or not _base_image_present()) and STANDIN_SCRIPT.is_file():
        result = subprocess.run(
            ["bash", str(STANDIN_SCRIPT)],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            pytest.skip(f"docker stand-in script failed: {result.stderr.strip()[-500:]}")
    if not _engine_ready():
        pytest.skip(
            "no Docker engine: `docker info` fails and no stand-in script at "
            f"{STANDIN_SCRIPT} could start one"
        )
    return "docker"


@pytest.fixture(scope="session")
def image(docker_engine: str) -> str:
    """Build the image from the repository once per session (``--network host`` for pip)."""
    result = _docker_sync("build", "--network", "host", "-t", IMAGE, str(REPO), timeout=1200)
    if result.returncode != 0:
        pytest.fail(f"docker build failed:\n{(result.stdout + result.stderr)[-4000:]}")
    # Drop earlier newsbot:test builds this one replaced (untagged, carrying our label). The
    # build stage's cached pip layer has no label, so it survives for the next run.
    _docker_sync("image", "prune", "-f", "--filter", "label=org.opencontainers.image.title=newsbot")
    return IMAGE


# --- async helpers (the fakes run in the test's event loop, so docker must not block it) ----


async def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``docker <args>`` without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        "docker",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"docker {' '.join(args[:2])} did not finish in {timeout}s") from None
    assert proc.returncode is not None
    result = subprocess.CompletedProcess(
        ["docker", *args],
        proc.returncode,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args[:2])} exited {result.returncode}: {result.stderr.strip()}"
        )
    return result


async def inspect(container: str, template: str = "{{json .}}") -> Any:
    """``docker inspect --format`` parsed as JSON."""
    result = await docker("inspect", "--format", template, container)
    return json.loads(result.stdout)


async def logs(container: str) -> str:
    """Everything the container wrote (stdout and stderr)."""
    result = await docker("logs", container, check=False)
    return result.stdout + result.stderr


async def wait_for_health(container: str, status: str, timeout: float = 90) -> dict[str, Any]:
    """Poll ``.State.Health`` until its Status is ``status``; return the Health object.

    Raises:
        AssertionError: the container stopped, or the status did not come in time.
    """
    deadline = time.monotonic() + timeout
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = await inspect(container, "{{json .State}}")
        health = state.get("Health") or {}
        if health.get("Status") == status:
            return health
        if not state.get("Running"):
            raise AssertionError(
                f"container stopped (exit {state.get('ExitCode')}) while waiting for {status}:\n"
                f"{(await logs(container))[-3000:]}"
            )
        await asyncio.sleep(0.5)
    raise AssertionError(
        f"health did not become {status} within {timeout}s; last: {json.dumps(health)[-1500:]}\n"
        f"logs:\n{(await logs(container))[-3000:]}"
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_name(prefix: str = "newsbot-test") -> str:
    """A container/volume name that cannot clash with a parallel run."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def bot_container(
    image: str,
    env: dict[str, str],
    *,
    volumes: Sequence[str] = (),
    network: str = "host",
    extra: Sequence[str] = (),
) -> AsyncIterator[str]:
    """Run the image detached with the hardened flags; remove it (and anonymous volumes)."""
    name = unique_name()
    args = ["run", "-d", "--name", name, "--network", network, *HARDENED, *FAST_HEALTH, *extra]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    for volume in volumes:
        args += ["-v", volume]
    await docker(*args, image)
    try:
        yield name
    finally:
        await docker("rm", "-f", "-v", name, check=False)


@pytest.fixture
def named_volumes(docker_engine: str) -> Iterator[list[str]]:
    """Names of volumes a test creates (append to it); all removed afterwards."""
    created: list[str] = []
    yield created
    for name in created:
        _docker_sync("volume", "rm", "-f", name)
