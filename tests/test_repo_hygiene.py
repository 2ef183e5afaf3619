"""Repository hygiene: CI workflow, Dependabot, lock files, entry points and HTTP-client rules.

These files are configuration, so nothing else would notice when one drifts: an action
pinned to a tag, a lock file that lost its hashes, a job that bypasses scripts/check.sh,
or a module that quietly brings in ``requests``. The ci_tools helpers that scripts/check.sh
relies on (ignore-file expiry, vulnerability-service probe, JUnit counts) are tested here too.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
DEPENDABOT = ROOT / ".github" / "dependabot.yml"
PROD_TXT = ROOT / "requirements-prod.txt"
DEV_TXT = ROOT / "requirements-dev.txt"
IN_FILES = (ROOT / "requirements-prod.in", ROOT / "requirements-dev.in")
SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+(\.\d+)*\b")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)")


def load_ci_tools() -> ModuleType:
    """Import scripts/ci_tools.py by path (scripts/ is not a package)."""
    path = ROOT / "scripts" / "ci_tools.py"
    spec = importlib.util.spec_from_file_location("newsbot_ci_tools", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class body is processed.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ci_tools = load_ci_tools()


# --- helpers ---------------------------------------------------------------------------------


def load_yaml(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def workflow_triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict), "the workflow's 'on:' must be a mapping"
    return triggers


def all_steps(workflow: dict[Any, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def logical_lines(path: Path) -> list[str]:
    """Requirement lines with backslash continuations joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        text = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if text.endswith("\\"):
            current += text[:-1] + " "
            continue
        current += text
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def pins(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` for every ``name==version`` line of a requirements file."""
    result: dict[str, str] = {}
    for line in logical_lines(path):
        match = PIN.match(line)
        if match:
            result[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(3)
    return result


def imported_top_level_modules(source: str) -> set[str]:
    """Top-level names of every module a Python source imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


# --- Dependabot ------------------------------------------------------------------------------


def test_dependabot_covers_pip_docker_and_actions_weekly_with_minor_patch_groups() -> None:
    config = load_yaml(DEPENDABOT)
    assert config["version"] == 2
    updates = {entry["package-ecosystem"]: entry for entry in config["updates"]}
    assert set(updates) == {"pip", "docker", "github-actions"}
    for ecosystem, entry in updates.items():
        assert entry["directory"] == "/", ecosystem
        assert entry["schedule"]["interval"] == "weekly", ecosystem
        assert isinstance(entry.get("open-pull-requests-limit"), int), ecosystem
        groups = entry.get("groups", {})
        assert groups, f"{ecosystem}: no groups"
        grouped_types = [set(group.get("update-types", [])) for group in groups.values()]
        assert {"minor", "patch"} in grouped_types, f"{ecosystem}: no minor+patch group"
        assert all("major" not in types for types in grouped_types), ecosystem


def test_nothing_merges_dependency_updates_automatically() -> None:
    for path in (ROOT / ".github").rglob("*.y*ml"):
        text = path.read_text(encoding="utf-8").lower()
        assert "gh pr merge" not in text, path
        assert "auto-merge" not in text and "automerge" not in text, path


# --- CI workflow -----------------------------------------------------------------------------


def test_workflow_triggers_permissions_and_concurrency() -> None:
    workflow = load_yaml(WORKFLOW)
    triggers = workflow_triggers(workflow)
    assert set(triggers) == {"push", "pull_request"}
    assert triggers["push"]["branches"] == ["main"]
    assert "pull_request_target" not in WORKFLOW.read_text(encoding="utf-8")
    assert workflow["permissions"] == {"contents": "read"}
    for job_name, job in workflow["jobs"].items():
        # A job may narrow permissions, never widen them beyond read.
        for scope, level in job.get("permissions", {}).items():
            assert level in {"read", "none"}, f"{job_name}: {scope}: {level}"
    concurrency = workflow["concurrency"]
    assert "github.ref" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is True


def test_every_action_is_pinned_to_a_full_sha_with_a_version_comment() -> None:
    workflow = load_yaml(WORKFLOW)
    raw_lines = WORKFLOW.read_text(encoding="utf-8").splitlines()
    uses = [(job, step["uses"]) for job, step in all_steps(workflow) if "uses" in step]
    assert uses, "the workflow uses no actions at all; the parser is looking in the wrong place"
    for job_name, ref in uses:
        assert SHA_PIN.match(ref), f"{job_name}: {ref} is not pinned to a 40-hex commit SHA"
        lines = [line for line in raw_lines if f"uses: {ref}" in line]
        assert lines, f"{ref} not found in the raw file"
        for line in lines:
            assert VERSION_COMMENT.search(line), f"{job_name}: '{line.strip()}' lacks '# vX.Y.Z'"


def test_checkout_never_persists_credentials() -> None:
    checkouts = [
        (job, step)
        for job, step in all_steps(load_yaml(WORKFLOW))
        if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts
    for job_name, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, job_name


def test_every_job_runs_check_script_and_caches_pip_on_the_lock_files() -> None:
    workflow = load_yaml(WORKFLOW)
    for job_name, job in workflow["jobs"].items():
        runs = [step["run"] for step in job["steps"] if "run" in step]
        assert runs, f"{job_name} runs nothing"
        for command in runs:
            assert command.strip().startswith("scripts/check.sh"), f"{job_name}: {command!r}"
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/setup-python@"):
                with_ = step["with"]
                assert with_["cache"] == "pip", job_name
                paths = set(with_["cache-dependency-path"].split())
                assert paths == {"requirements-prod.txt", "requirements-dev.txt"}, job_name


def test_workflow_runs_every_check_step_and_the_python_matrix() -> None:
    workflow = load_yaml(WORKFLOW)
    commands = [step["run"] for _, step in all_steps(workflow) if "run" in step]
    steps_run = {command.split()[1] for command in commands}
    assert steps_run == {
        "tests",
        "lint",
        "types",
        "security",
        "audit",
        "docker-lint",
        "workflow-lint",
    }
    assert "scripts/check.sh tests tests/container" in commands
    matrix = workflow["jobs"]["tests"]["strategy"]["matrix"]["python-version"]
    assert matrix == ["3.11", "3.12", "3.13"]


# --- lock files ------------------------------------------------------------------------------


def test_dev_lock_starts_by_including_the_prod_lock() -> None:
    first_line = DEV_TXT.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "-r requirements-prod.txt"


@pytest.mark.parametrize("path", [PROD_TXT, DEV_TXT], ids=lambda p: p.name)
def test_every_requirement_is_pinned_with_hashes(path: Path) -> None:
    requirements = [line for line in logical_lines(path) if not line.startswith("-r ")]
    assert len(requirements) > 5, f"{path.name} looks empty"
    for line in requirements:
        assert not line.startswith("-"), f"{path.name}: unexpected option line {line!r}"
        assert PIN.match(line), f"{path.name}: not ==-pinned: {line[:80]!r}"
        assert "--hash=sha256:" in line, f"{path.name}: no hash: {line[:80]!r}"


def test_dev_lock_does_not_repeat_prod_pins() -> None:
    # scripts/lock.sh drops them; a repeat means the file was regenerated without it.
    assert not set(pins(PROD_TXT)) & set(pins(DEV_TXT))


@pytest.mark.parametrize(
    ("in_file", "lock"),
    [(IN_FILES[0], PROD_TXT), (IN_FILES[1], DEV_TXT)],
    ids=["prod", "dev"],
)
def test_lock_files_match_their_in_files(in_file: Path, lock: Path) -> None:
    wanted = pins(in_file)
    assert wanted, f"{in_file.name} pins nothing"
    locked = pins(lock)
    for name, version in wanted.items():
        assert locked.get(name) == version, (
            f"{in_file.name} wants {name}=={version} but {lock.name} has "
            f"{locked.get(name)}; run scripts/lock.sh"
        )


def test_requests_is_not_a_direct_dependency() -> None:
    for path in IN_FILES:
        assert "requests" not in pins(path), path.name


def test_requests_does_not_ship_even_indirectly() -> None:
    # pip-audit (a dev tool) pulls it into the dev venv; nothing that ships may need it.
    assert "requests" not in pins(PROD_TXT)


# --- entry points ----------------------------------------------------------------------------


def test_ci_run_execs_the_check_script() -> None:
    ci_run = ROOT / ".ci" / "run"
    lines = [line.strip() for line in ci_run.read_text(encoding="utf-8").splitlines()]
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert lines[-1] == "exec bash scripts/check.sh"
    for script in (ci_run, ROOT / "scripts" / "check.sh", ROOT / "scripts" / "lock.sh"):
        assert os.access(script, os.X_OK), f"{script} is not executable"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["no-such-step"], 2, "unknown step"),
        (["lint", "extra"], 2, "takes no arguments"),
        (["all", "extra"], 2, "takes no arguments"),
        (["--help"], 0, "one entry point"),
    ],
)
def test_check_script_rejects_bad_usage_before_touching_the_venv(
    args: list[str], code: int, message: str
) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run(
        [bash, str(ROOT / "scripts" / "check.sh"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == code, result.stderr
    assert message in (result.stdout + result.stderr)
    assert "creating .venv" not in result.stdout


# --- HTTP client rule ------------------------------------------------------------------------


def test_import_scan_sees_requests_in_every_import_form() -> None:
    for source in ("import requests", "import requests.adapters", "from requests import get"):
        assert "requests" in imported_top_level_modules(source), source
    assert "requests" not in imported_top_level_modules("import httpx\nfrom . import requests")


def test_no_bot_module_imports_requests() -> None:
    modules = sorted((ROOT / "bot").rglob("*.py"))
    assert modules, "bot/ has no modules"
    offenders = [
        str(path.relative_to(ROOT))
        for path in modules
        if "requests" in imported_top_level_modules(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "bot/ must use the shared HTTP clients (feeds: aiohttp; Bot API: httpx)"


# --- ci_tools: ignored advisories ------------------------------------------------------------

TODAY = date(2026, 6, 1)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ignore.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_ignore_file_in_repo_is_valid_and_unexpired() -> None:
    entries = ci_tools.load_ignores(ROOT / ".pip-audit-ignore.toml", date.today())
    for entry in entries:
        assert entry.expires >= date.today()


def test_missing_ignore_file_ignores_nothing(tmp_path: Path) -> None:
    assert ci_tools.load_ignores(tmp_path / "absent.toml", TODAY) == []


def test_valid_ignore_entries_are_returned_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[ignore]]\nid = "GHSA-2345-6789-cfgh"\nreason = " not reachable "\n'
        "expires = 2026-06-01\n\n"
        '[[ignore]]\nid = "PYSEC-2025-17"\nreason = "no fix yet"\nexpires = 2026-07-01\n',
    )
    entries = ci_tools.load_ignores(path, TODAY)
    assert [(e.vuln_id, e.reason, e.expires) for e in entries] == [
        ("GHSA-2345-6789-cfgh", "not reachable", date(2026, 6, 1)),
        ("PYSEC-2025-17", "no fix yet", date(2026, 7, 1)),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[ignore]]\nid = "CVE-2025-1"\nreason = "x"\nexpires = 2026-05-31\n', "expired"),
        ('[[ignore]]\nid = "CVE-2025-1"\nexpires = 2026-09-01\n', "reason"),
        ('[[ignore]]\nid = "CVE-2025-1"\nreason = "  "\nexpires = 2026-09-01\n', "reason"),
        ('[[ignore]]\nid = "CVE-2025-1"\nreason = "x"\nexpires = "2026-09-01"\n', "TOML date"),
        ('[[ignore]]\nid = "CVE-2025-1"\nreason = "x"\n', "TOML date"),
        (
            '[[ignore]]\nid = "CVE-2025-1"\nreason = "x"\nexpires = 2026-09-01T00:00:00\n',
            "TOML date",
        ),
        ('[[ignore]]\nid = "requests"\nreason = "x"\nexpires = 2026-09-01\n', "'id'"),
        (
            '[[ignore]]\nid = "CVE-2025-1"\nreason = "x"\nexpires = 2026-09-01\n'
            '[[ignore]]\nid = "CVE-2025-1"\nreason = "y"\nexpires = 2026-09-01\n',
            "twice",
        ),
        ("ignore = 3\n", "array of tables"),
        ("ignore = [1]\n", "must be a table"),
        ('[[ignores]]\nid = "CVE-2025-1"\n', "unknown top-level"),
        ("[[ignore]\n", "not valid TOML"),
    ],
)
def test_bad_or_expired_ignore_entries_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ci_tools.IgnoreFileError, match=message):
        ci_tools.load_ignores(write(tmp_path, body), TODAY)


def test_expired_ignore_makes_the_cli_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[[ignore]]\nid = "CVE-2020-1"\nreason = "x"\nexpires = 2020-01-01\n')
    assert ci_tools.main(["audit-ignores", str(path)]) == 1
    assert capsys.readouterr().out == ""


def test_cli_prints_one_ignore_argument_per_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[[ignore]]\nid = "CVE-2099-7"\nreason = "x"\nexpires = 2099-01-01\n')
    assert ci_tools.main(["audit-ignores", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["--ignore-vuln=CVE-2099-7"]
    assert "until 2099-01-01" in captured.err


# --- ci_tools: vulnerability-service probe ----------------------------------------------------


def probe_with(handler: Any) -> tuple[str | None, str]:
    result: tuple[str | None, str] = ci_tools.probe_service(
        "httpx", "0.28.1", transport=httpx.MockTransport(handler)
    )
    return result


def test_probe_prefers_pypi_when_it_answers() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"info": {}, "vulnerabilities": []})

    assert probe_with(handler)[0] == "pypi"
    assert seen == ["https://pypi.org/pypi/httpx/0.28.1/json"]


def test_probe_falls_back_to_osv_when_pypi_has_no_version_endpoint() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "pypi.org":
            return httpx.Response(404)
        body = json.loads(request.content)
        assert body == {"package": {"name": "httpx", "ecosystem": "PyPI"}, "version": "0.28.1"}
        return httpx.Response(200, json={})

    assert probe_with(handler)[0] == "osv"


def test_probe_reports_not_run_with_both_reasons() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "pypi.org":
            return httpx.Response(404)
        raise httpx.ConnectError("Name or service not known", request=request)

    service, detail = probe_with(handler)
    assert service is None
    assert "HTTP 404" in detail
    assert "ConnectError" in detail and "Name or service not known" in detail


def test_probe_does_not_trust_a_200_that_is_not_the_json_api() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>captive portal</html>")

    service, detail = probe_with(handler)
    assert service is None
    assert "PyPI" in detail and "OSV" in detail


def test_first_pin_skips_the_include_line(tmp_path: Path) -> None:
    lock = tmp_path / "req.txt"
    lock.write_text("-r other.txt\n# comment\naiofiles==25.1.0 \\\n    --hash=sha256:ab\n")
    assert ci_tools.first_pin(lock) == ("aiofiles", "25.1.0")
    lock.write_text("-r other.txt\n")
    with pytest.raises(ValueError, match="no 'name==version'"):
        ci_tools.first_pin(lock)


# --- ci_tools: JUnit counts ------------------------------------------------------------------


def test_junit_counts_come_from_a_real_pytest_report(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_ok(): pass\n"
        "def test_ok2(): pass\n"
        "def test_bad(): assert False\n"
        "@pytest.mark.skip(reason='x')\n"
        "def test_skip(): pass\n"
        "@pytest.fixture\n"
        "def broken(): raise RuntimeError\n"
        "def test_error(broken): pass\n"
    )
    report = tmp_path / "junit.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    counts = ci_tools.junit_counts(report)
    assert (counts.passed, counts.failed, counts.skipped) == (2, 2, 1)
