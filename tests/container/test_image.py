"""The built image itself: user, configuration, contents, and what the build context holds."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.conftest import BASE_IMAGE, BOT_UID, REPO, _docker_sync

pytestmark = [pytest.mark.container, pytest.mark.timeout(1500)]

NS = 1_000_000_000
# One-off commands also run hardened, so they prove nothing needs a writable root filesystem.
HARDENED_RO = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def run_in_image(image: str, *command: str, entrypoint: str = "sh") -> tuple[int, str]:
    """Run a one-off command in a network-less container; return exit code and output."""
    result = _docker_sync(
        "run", "--rm", "--network", "none", *HARDENED_RO, "--entrypoint", entrypoint, image,
        *command,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def test_whoami_is_botuser(image: str) -> None:
    code, out = run_in_image(image, entrypoint="whoami")
    assert code == 0, out
    assert out.strip() == "botuser"
    code, out = run_in_image(image, "-c", "id -u; id -g")
    assert out.split() == [str(BOT_UID), str(BOT_UID)]


def test_image_config_user_healthcheck_entrypoint_and_volumes(image: str) -> None:
    result = _docker_sync("image", "inspect", "--format", "{{json .Config}}", image)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["User"] == "botuser"
    assert config["Entrypoint"] == ["python", "-m", "bot"]
    assert config["StopSignal"] == "SIGTERM"
    health = config["Healthcheck"]
    assert health["Test"] == ["CMD", "python", "-m", "bot.healthcheck"]
    assert health["Interval"] == 30 * NS
    assert health["Timeout"] == 10 * NS
    assert health["Timeout"] < health["Interval"]
    assert health["StartPeriod"] == 20 * NS
    assert health["Retries"] == 3
    assert set(config["Volumes"]) == {"/app/data", "/app/backups"}
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["HEALTH_HOST"] == "0.0.0.0"
    assert env["DATA_DIR"] == "/app/data"
    assert env["BACKUP_DIR"] == "/app/backups"
    assert not [k for k in env if "TOKEN" in k or "SECRET" in k]
    assert config["Labels"]["org.opencontainers.image.title"] == "newsbot"


def test_data_dirs_are_0700_botuser_in_the_image(image: str) -> None:
    code, out = run_in_image(image, "-c", "stat -c '%a %U %G' /app/data /app/backups")
    assert code == 0, out
    assert out.splitlines() == ["700 botuser botuser", "700 botuser botuser"]


def test_app_files_are_root_owned_and_read_only_for_botuser(image: str) -> None:
    script = (
        "stat -c '%U' /app /app/bot /app/bot/__main__.py /opt/venv;"
        # Anything botuser owns or anyone may write, outside the data dirs, is a finding.
        "find /app/bot /opt/venv ! -type l \\( -user botuser -o -perm -o+w \\) -print;"
        "touch /app/bot/x 2>/dev/null && echo WROTE-BOT;"
        "touch /opt/venv/x 2>/dev/null && echo WROTE-VENV;"
        "exit 0"
    )
    # Without --read-only, so only file ownership and modes can stop the writes.
    result = _docker_sync("run", "--rm", "--network", "none", "--entrypoint", "sh", image,
                          "-c", script)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["root"] * 4


def test_no_tests_dev_tools_pip_or_compilers_in_the_image(image: str) -> None:
    for module in ("pytest", "ruff", "mypy", "pip", "bandit"):
        code, out = run_in_image(image, "-m", module, "--version", entrypoint="python")
        assert code != 0, f"{module} is importable in the image: {out}"
        assert "No module named" in out
    code, out = run_in_image(
        image, "-c", "ls /app; command -v gcc cc make git curl wget || true; ls /app/bot/services"
    )
    assert code == 0, out
    lines = out.split()
    assert sorted(lines[:3]) == ["backups", "bot", "data"], out
    assert not {"tests", "docs", "benchmarks", ".git", ".env"} & set(lines)
    assert not [line for line in lines if line.startswith("/")], f"tools found: {out}"
    assert "health.py" in lines


def test_runtime_dependencies_import_and_bytecode_is_prebuilt(image: str) -> None:
    code, out = run_in_image(
        image,
        "-c",
        "import telegram, httpx, aiohttp, feedparser, defusedxml, prometheus_client, aiofiles;"
        "import bot.healthcheck, bot.services.health, bot.services.metrics;"
        "import sys; print(telegram.__version__, sys.dont_write_bytecode)",
        entrypoint="python",
    )
    assert code == 0, out
    assert out.split() == ["22.8", "True"]
    code, out = run_in_image(image, "-c", "ls /app/bot/__pycache__ | grep -c 'cpython-311.pyc'")
    assert int(out.strip()) > 0


def test_healthcheck_cli_reports_unreachable_without_anything_else(image: str) -> None:
    code, out = run_in_image(image, "-m", "bot.healthcheck", entrypoint="python")
    assert code == 1
    assert out.startswith("unhealthy: cannot reach http://127.0.0.1:8080/healthz")


def test_missing_token_exits_2_with_one_line(image: str) -> None:
    result = _docker_sync("run", "--rm", "--network", "none", *HARDENED_RO, image)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "TELEGRAM_BOT_TOKEN" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- build context and .dockerignore ----------------------------------------------------------

SENTINEL = f"sentinel-{uuid.uuid4().hex}"
# Files that must never reach the daemon, each holding the sentinel.
MUST_NOT_SEND = [
    ".env",
    ".env.production",
    "bot/.env",
    ".git/config",
    ".venv/pyvenv.cfg",
    "data/channels.json",
    "backups/channels-20240101T000000Z.json",
    "bot/__pycache__/app.cpython-311.pyc",
    "bot/services/stray.pyc",
    ".pytest_cache/v/cache/lastfailed",
    ".mypy_cache/3.11/x.json",
    ".ruff_cache/content",
    "newsbot.log",
    "heap.dump",
    "db.sql",
    "core",
    "htmlcov/index.html",
    ".coverage",
    "tests/test_secret.py",
    "docs/notes.md",
    "benchmarks/results/run.json",
    "id_rsa.pem",
]


@pytest.fixture(scope="module")
def context_copy(tmp_path_factory: pytest.TempPathFactory, image: str) -> Iterator[Path]:
    """A copy of the build context (as git would have it) with sentinel files planted."""
    ctx = tmp_path_factory.mktemp("context")
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*_cache", "data", "backups")
    for entry in REPO.iterdir():
        if entry.name in {".venv", ".git", "data", "backups"} or entry.name.endswith("_cache"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, ctx / entry.name, ignore=ignore)
        elif entry.name != ".env":
            shutil.copy2(entry, ctx / entry.name)
    for rel in MUST_NOT_SEND:
        path = ctx / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"TELEGRAM_BOT_TOKEN={SENTINEL}\n")
    yield ctx


def test_dockerignore_context_holds_only_what_the_build_needs(
    context_copy: Path, tmp_path: Path
) -> None:
    """Build a throwaway image that COPYs the whole context, and list what arrived."""
    lister = tmp_path / "List.Dockerfile"
    lister.write_text(f"FROM {BASE_IMAGE}\nCOPY . /ctx\n")
    tag = f"newsbot-context-list:{uuid.uuid4().hex[:8]}"
    build = _docker_sync(
        "build", "--network", "none", "-q", "-f", str(lister), "-t", tag, str(context_copy),
        timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    try:
        listing = _docker_sync(
            "run", "--rm", "--network", "none", "--entrypoint", "sh", tag, "-c",
            f"cd /ctx && find . -type f | sort; grep -rlF {SENTINEL} . || true",
        )  # fmt: skip
    finally:
        _docker_sync("image", "rm", "-f", tag)
    sent = {line.removeprefix("./") for line in listing.stdout.split()}
    # The image COPYs only these two; nothing else needs to leave the developer's machine.
    assert {p.split("/")[0] for p in sent} == {"bot", "requirements-prod.txt"}
    assert "bot/__main__.py" in sent
    assert "bot/services/health.py" in sent
    leaked = sorted(set(MUST_NOT_SEND) & sent)
    assert leaked == []
    assert not [p for p in sent if SENTINEL in p or p.startswith(("tests/", "docs/", ".git"))]


def test_sentinel_env_from_the_context_is_absent_from_the_image(context_copy: Path) -> None:
    tag = f"newsbot-sentinel:{uuid.uuid4().hex[:8]}"
    build = _docker_sync("build", "--network", "host", "-q", "-t", tag, str(context_copy),
                         timeout=1200)  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    try:
        result = _docker_sync(
            "run", "--rm", "--network", "none", "--entrypoint", "sh", tag, "-c",
            "find / -xdev \\( -name '.env' -o -name '.env.*' \\) -print 2>/dev/null;"
            f"grep -rlsF {SENTINEL} /app /opt /etc /root /home /tmp /usr/local 2>/dev/null;"
            "echo DONE",
            timeout=120,
        )  # fmt: skip
        history = _docker_sync("history", "--no-trunc", tag)
    finally:
        _docker_sync("image", "rm", "-f", tag)
    assert result.stdout.split() == ["DONE"], result.stdout
    assert SENTINEL not in history.stdout
