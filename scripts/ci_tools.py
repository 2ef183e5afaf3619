"""Small helpers that scripts/check.sh calls; kept in Python so they are typed and tested.

Three jobs, one sub-command each:

* ``audit-ignores FILE``: read the ignored-advisory list and print one ``--ignore-vuln``
  argument per line. Every entry must name a reason and an expiry date, and an expired entry
  stops the audit: an ignore is a decision with a deadline, not a permanent mute.
* ``audit-probe REQUIREMENTS``: find a vulnerability service that answers for the first pin
  of a lock file and print its pip-audit name (``pypi`` or ``osv``). Exit code 3 means none
  answered, so the audit is reported as *not run* rather than passed or failed.
* ``junit-counts FILE``: read pytest's JUnit XML and print ``passed failed skipped`` so the
  check script can print one plain closing line whatever pytest printed.

Run ``python scripts/ci_tools.py --help`` for usage.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import httpx
from defusedxml import ElementTree

logger = logging.getLogger(__name__)

EXIT_NOT_RUN = 3
PYPI_JSON_URL = "https://pypi.org/pypi"
OSV_QUERY_URL = "https://api.osv.dev/v1/query"
# Advisory ids as pip-audit prints them: PYSEC-2024-1, GHSA-xxxx-xxxx-xxxx, CVE-2024-1234.
_VULN_ID_RE = re.compile(r"^(PYSEC-\d{4}-\d+|GHSA(-[23456789cfghjmpqrvwx]{4}){3}|CVE-\d{4}-\d+)$")
_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


class IgnoreFileError(ValueError):
    """The ignore file is malformed or holds an expired entry; the message says which."""


@dataclass(frozen=True, slots=True)
class IgnoredAdvisory:
    """One advisory the audit may skip, with why and until when."""

    vuln_id: str
    reason: str
    expires: date


@dataclass(frozen=True, slots=True)
class TestCounts:
    """Totals from one pytest run; ``failed`` includes collection and fixture errors."""

    passed: int
    failed: int
    skipped: int


def load_ignores(path: Path, today: date) -> list[IgnoredAdvisory]:
    """Parse the ignored-advisory TOML file and refuse bad or expired entries.

    Args:
        path: The file; a missing file means nothing is ignored.
        today: The date expiry is judged against (a parameter so tests need no clock).

    Returns:
        The entries, in file order.

    Raises:
        IgnoreFileError: The file is not valid TOML, an entry lacks ``id``, ``reason`` or
            ``expires``, an id is malformed or repeated, or an entry expired before ``today``.
    """
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise IgnoreFileError(f"{path}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"ignore"}
    if unknown:
        raise IgnoreFileError(f"{path}: unknown top-level keys {sorted(unknown)}")
    entries = data.get("ignore", [])
    if not isinstance(entries, list):
        raise IgnoreFileError(f"{path}: 'ignore' must be an array of tables ([[ignore]])")
    result: list[IgnoredAdvisory] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: entry {number}"
        if not isinstance(entry, dict):
            raise IgnoreFileError(f"{where}: must be a table")
        vuln_id = entry.get("id")
        reason = entry.get("reason")
        expires = entry.get("expires")
        if not isinstance(vuln_id, str) or not _VULN_ID_RE.match(vuln_id):
            raise IgnoreFileError(f"{where}: 'id' must be a PYSEC-, GHSA- or CVE- id")
        if vuln_id in seen:
            raise IgnoreFileError(f"{where}: {vuln_id} is listed twice")
        if not isinstance(reason, str) or not reason.strip():
            raise IgnoreFileError(f"{where}: {vuln_id} needs a non-empty 'reason'")
        # TOML has a date type: `expires = 2026-12-31` (unquoted). A string is refused so a
        # typo cannot turn into "never expires".
        if not isinstance(expires, date) or isinstance(expires, datetime):
            raise IgnoreFileError(f"{where}: {vuln_id} needs 'expires' as a TOML date (YYYY-MM-DD)")
        if expires < today:
            raise IgnoreFileError(
                f"{where}: the ignore for {vuln_id} expired on {expires.isoformat()}; "
                "fix or upgrade the dependency, or renew the entry with a new reason"
            )
        seen.add(vuln_id)
        result.append(IgnoredAdvisory(vuln_id=vuln_id, reason=reason.strip(), expires=expires))
    return result


def first_pin(requirements: Path) -> tuple[str, str]:
    """Return ``(name, version)`` of the first ``name==version`` line of a lock file.

    Raises:
        ValueError: The file holds no pinned requirement.
    """
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = _PIN_RE.match(line)
        if match:
            return match.group(1), match.group(2)
    raise ValueError(f"{requirements}: no 'name==version' line found")


def probe_service(
    name: str,
    version: str,
    *,
    timeout_s: float = 15.0,
    transport: httpx.BaseTransport | None = None,
) -> tuple[str | None, str]:
    """Find a vulnerability service that answers a real query for one package.

    pip-audit reports an unreachable service as "dependency not found", which looks like a
    failure of the project. Asking first tells "we could not look" apart from "we looked".

    Args:
        name: A package name from the lock file.
        version: Its pinned version.
        timeout_s: Per-request timeout.
        transport: Only for tests (an ``httpx.MockTransport``); ``None`` uses the network.

    Returns:
        ``(service, detail)``: ``service`` is ``"pypi"`` or ``"osv"``, or ``None`` when
        neither answered, and then ``detail`` says why for each.
    """
    problems: list[str] = []
    with httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=True) as client:
        pypi_url = f"{PYPI_JSON_URL}/{name}/{version}/json"
        try:
            response = client.get(pypi_url)
            if response.status_code == 200 and "vulnerabilities" in response.json():
                return "pypi", pypi_url
            problems.append(f"PyPI JSON API answered HTTP {response.status_code} for {pypi_url}")
        except (httpx.HTTPError, ValueError) as exc:
            problems.append(f"PyPI JSON API ({pypi_url}): {type(exc).__name__}: {exc}")
        query = {"package": {"name": name, "ecosystem": "PyPI"}, "version": version}
        try:
            response = client.post(OSV_QUERY_URL, json=query)
            if response.status_code == 200 and isinstance(response.json(), dict):
                return "osv", OSV_QUERY_URL
            problems.append(f"OSV answered HTTP {response.status_code} for {OSV_QUERY_URL}")
        except (httpx.HTTPError, ValueError) as exc:
            problems.append(f"OSV ({OSV_QUERY_URL}): {type(exc).__name__}: {exc}")
    return None, "; ".join(problems)


def junit_counts(path: Path) -> TestCounts:
    """Sum the test counts of every ``<testsuite>`` in a pytest JUnit XML report."""
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = failed = skipped = 0
    for suite in suites:
        total += int(suite.get("tests", "0"))
        failed += int(suite.get("failures", "0")) + int(suite.get("errors", "0"))
        skipped += int(suite.get("skipped", "0"))
    return TestCounts(passed=total - failed - skipped, failed=failed, skipped=skipped)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; the exit code is what scripts/check.sh acts on."""
    logging.basicConfig(level=logging.WARNING, format="ci_tools: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    ignores = sub.add_parser("audit-ignores", help="print --ignore-vuln args, refuse expired")
    ignores.add_argument("file", type=Path)
    probe = sub.add_parser("audit-probe", help="print the vulnerability service that answers")
    probe.add_argument("requirements", type=Path)
    probe.add_argument("--timeout", type=float, default=15.0)
    counts = sub.add_parser("junit-counts", help="print 'passed failed skipped'")
    counts.add_argument("file", type=Path)
    args = parser.parse_args(argv)

    if args.command == "audit-ignores":
        try:
            entries = load_ignores(args.file, date.today())
        except IgnoreFileError as exc:
            logger.error("%s", exc)
            return 1
        for entry in entries:
            print(f"--ignore-vuln={entry.vuln_id}")
            print(
                f"ignoring {entry.vuln_id} until {entry.expires.isoformat()}: {entry.reason}",
                file=sys.stderr,
            )
        return 0
    if args.command == "audit-probe":
        name, version = first_pin(args.requirements)
        service, detail = probe_service(name, version, timeout_s=args.timeout)
        if service is None:
            print(detail, file=sys.stderr)
            return EXIT_NOT_RUN
        print(service)
        return 0
    result = junit_counts(args.file)
    print(result.passed, result.failed, result.skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
