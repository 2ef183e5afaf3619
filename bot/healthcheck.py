"""``python -m bot.healthcheck``: exit 0 iff the running bot's ``/healthz`` says it is healthy.

Docker's ``HEALTHCHECK`` runs this inside the container, so it needs nothing beyond the
bot's own virtualenv (no curl/wget in the image). It reads only ``HEALTH_HOST`` and
``HEALTH_PORT`` — never the token or the rest of the settings, so a broken ``.env`` cannot
make the check itself crash — and gives up after :data:`TOTAL_TIMEOUT_S` in all, because a
bot whose event loop is stalled accepts the connection but never answers.

Exit codes: 0 healthy; 1 anything else, with one line on stdout saying why (Docker keeps it
in ``docker inspect --format '{{json .State.Health}}'``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping

import httpx

logger = logging.getLogger(__name__)

TOTAL_TIMEOUT_S = 5.0
_DEFAULT_HOST = "127.0.0.1"
_DEFAULT_PORT = 8080
# A server bound to every interface is reached on loopback from inside the container. These
# wildcard strings are only mapped *away from*; nothing here binds to them.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": _DEFAULT_HOST}  # noqa: S104


class CheckFailed(Exception):
    """The bot is not healthy or could not be asked; the message is the one-line reason."""


def health_url(environ: Mapping[str, str]) -> str:
    """Build the ``/healthz`` URL from ``HEALTH_HOST``/``HEALTH_PORT``.

    Raises:
        CheckFailed: the port is disabled (0) or not a valid port number.

    """
    host = environ.get("HEALTH_HOST", "").strip()
    host = _WILDCARDS.get(host, host)
    raw_port = environ.get("HEALTH_PORT", "").strip()
    try:
        port = int(raw_port) if raw_port else _DEFAULT_PORT
    except ValueError:
        raise CheckFailed(f"HEALTH_PORT is not a number: {raw_port!r}") from None
    if port == 0:
        raise CheckFailed("health endpoint is disabled (HEALTH_PORT=0)")
    if not 0 < port < 65536:
        raise CheckFailed(f"HEALTH_PORT out of range: {port}")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


async def check(url: str, timeout_s: float = TOTAL_TIMEOUT_S) -> str:
    """GET ``url`` and judge the answer.

    Returns:
        A one-line summary of a healthy answer.

    Raises:
        CheckFailed: with the reason, for any status but 200, a body whose ``status`` is not
            ``"ok"``, a connection error, or no complete answer within ``timeout_s``.

    """
    # trust_env=False: an HTTP(S)_PROXY in the container's environment must not reroute a
    # loopback health probe. httpx's per-phase timeouts are set past the total deadline so
    # that the total, enforced by asyncio.timeout, is the one that fires.
    async with httpx.AsyncClient(timeout=timeout_s + 1, trust_env=False) as client:
        try:
            async with asyncio.timeout(timeout_s):
                response = await client.get(url)
        except TimeoutError:
            raise CheckFailed(f"no answer from {url} within {timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            raise CheckFailed(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise CheckFailed(f"HTTP {response.status_code} with a non-JSON body from {url}")
    reasons = "; ".join(str(r) for r in body.get("reasons") or []) or "no reason given"
    if response.status_code != 200 or body.get("status") != "ok":
        raise CheckFailed(f"HTTP {response.status_code}, status {body.get('status')!r}: {reasons}")
    return (
        f"ok: last Bot API success {body.get('seconds_since_api_success')}s ago, "
        f"loop lag {body.get('loop_lag_max_s')}s"
    )


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run one check and print one line; return the process exit code."""
    try:
        url = health_url(os.environ if environ is None else environ)
        print(asyncio.run(check(url)))
    except CheckFailed as exc:
        print(f"unhealthy: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
