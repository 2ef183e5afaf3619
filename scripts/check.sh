#!/usr/bin/env bash
# The one entry point for every check, locally and in CI (.ci/run and every GitHub job).
#
#   scripts/check.sh                  # everything, then a summary table
#   scripts/check.sh STEP [ARGS...]   # one step: tests lint types security audit
#                                     #           docker-lint workflow-lint
#   scripts/check.sh tests tests/services -k fetcher   # extra args go to pytest
#   scripts/check.sh setup            # only create/update .venv, run nothing
#
# Needs only Python 3.11+ (and bash). Creates .venv if missing and installs the hash-pinned
# requirements-dev.txt into it on every run (a no-op in a few seconds when nothing changed).
#
# Each step ends as passed, failed or NOT RUN (it could not run here, e.g. the vulnerability
# service is unreachable). Exit codes:
#   0  every step passed; or, when not strict, some steps could not run (said loudly)
#   1  a step failed, or (strict) a step could not run
#   2  bad usage
#   3  a single step was asked for and it could not run (not strict)
# Strict mode is on under GitHub Actions (GITHUB_ACTIONS=true) or with CHECK_STRICT=1: there
# the audit must really run. Override the interpreter used to create .venv with PYTHON=...
# CHECK_TESTS_TIMEOUT_S (default 3600) caps the whole pytest run, so a hang cannot eat CI.
set -euo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
readonly SELF
cd "$(dirname "$SELF")/.."

readonly VENV=.venv
readonly PY="$VENV/bin/python"
readonly BIN="$VENV/bin"
readonly STEPS=(lint types tests security audit docker-lint workflow-lint)
readonly DOCKER_STANDIN=../shared/tools/docker-standin.sh
readonly AUDIT_IGNORE_FILE=.pip-audit-ignore.toml

# Colour only for a terminal or GitHub's log viewer (CI=true alone makes some tools force it).
COLOR=never
if [[ -t 1 || "${GITHUB_ACTIONS:-}" == "true" ]]; then
  COLOR=always
fi

STRICT=0
if [[ "${GITHUB_ACTIONS:-}" == "true" || "${CHECK_STRICT:-0}" == "1" ]]; then
  STRICT=1
fi

# Results of the steps run so far (parallel arrays: bash 3.2 on macOS has no assoc arrays).
RESULT_NAMES=()
RESULT_STATES=()
RESULT_TIMES=()
RESULT_NOTES=()
TEST_COUNTS=""  # "passed failed skipped" once the tests step has run
NOT_RUN_REASON=""  # a step that could not run puts its reason here

usage() {
  # The comment block at the top of this file, without the leading "# ".
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$SELF"
}

say() { printf '%s\n' "$*"; }
banner() { printf '\n==> %s\n' "$*"; }

# --- set-up -------------------------------------------------------------------------------

ensure_venv() {
  if [[ ! -x "$PY" ]]; then
    local python="${PYTHON:-python3}"
    if ! command -v "$python" >/dev/null 2>&1; then
      say "check: '$python' not found; install Python 3.11+ or set PYTHON=/path/to/python" >&2
      exit 1
    fi
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      say "check: $("$python" --version 2>&1) is too old; newsbot needs Python 3.11+" >&2
      exit 1
    fi
    say "check: creating $VENV with $("$python" --version 2>&1)"
    "$python" -m venv "$VENV"
  fi
  # --require-hashes: every file pip installs must match a hash in the lock files.
  if ! "$PY" -m pip install --quiet --disable-pip-version-check --require-hashes \
    -r requirements-dev.txt; then
    say "check: installing requirements-dev.txt into $VENV failed (see pip's message above)" >&2
    exit 1
  fi
}

# --- steps: each returns 0 passed, 1 failed, 3 not run (reason in NOT_RUN_REASON) ----------

step_lint() {
  local rc=0 shell_scripts=(.ci/run)
  "$BIN/ruff" check . || rc=1
  "$BIN/ruff" format --check . || rc=1
  # The shell entry points are code too: shellcheck them.
  shopt -s nullglob
  shell_scripts+=(scripts/*.sh)
  shopt -u nullglob
  say "shellcheck ${shell_scripts[*]}"
  "$BIN/shellcheck" "${shell_scripts[@]}" || rc=1
  # The translation catalogue: a fresh .pot, every string translated, placeholders intact.
  say "scripts/i18n.sh check"
  bash scripts/i18n.sh check || rc=1
  return "$rc"
}

step_types() {
  # Files and strictness come from [tool.mypy] in pyproject.toml.
  "$BIN/mypy" || return 1
}

# Give the container tests an engine where none runs, using the stand-in beside the clone.
# Sets DOCKERD_STARTED=1 when this run started dockerd, so CI can stop it afterwards.
DOCKERD_STARTED=0
maybe_start_docker() {
  local arg
  [[ -d tests/container ]] || return 0
  for arg in "$@"; do
    [[ "$arg" == --ignore=tests/container* ]] && return 0
  done
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    return 0
  fi
  if [[ ! -f "$DOCKER_STANDIN" ]]; then
    say "tests: no Docker engine and no $DOCKER_STANDIN; container tests will skip themselves"
    return 0
  fi
  if [[ "$(id -u)" != "0" ]]; then
    say "tests: no Docker engine, and $DOCKER_STANDIN needs root; container tests will skip"
    return 0
  fi
  say "tests: no Docker engine; starting one with $DOCKER_STANDIN"
  if bash "$DOCKER_STANDIN" </dev/null; then
    [[ -f /tmp/dockerd.pid ]] && DOCKERD_STARTED=1
  else
    say "tests: the Docker stand-in failed; container tests will skip themselves"
  fi
}

maybe_stop_docker() {
  # Only in CI, only the dockerd this run started, by its pid.
  if [[ "$DOCKERD_STARTED" == "1" && "${CI:-}" == "true" && -f /tmp/dockerd.pid ]]; then
    local pid
    pid="$(cat /tmp/dockerd.pid)"
    say "tests: stopping the dockerd this run started (pid $pid)"
    kill "$pid" 2>/dev/null || true
    rm -f /tmp/dockerd.pid
  fi
}

step_tests() {
  local rc=0 junit
  maybe_start_docker "$@"
  junit="$(mktemp "${TMPDIR:-/tmp}/newsbot-junit.XXXXXX")"
  # Watchdog: per-test timeouts (pytest-timeout) cannot interrupt every hang (a stuck async
  # fixture teardown, say). A whole-run limit keeps a hang from eating CI's 90 minutes and
  # still leaves time for the summary. faulthandler dumps every thread's stack when one test
  # runs past 300 s, so the log shows where it hung.
  local limit="${CHECK_TESTS_TIMEOUT_S:-3600}" watchdog=()
  if command -v timeout >/dev/null 2>&1; then
    watchdog=(timeout --kill-after=30 "$limit")
  fi
  ${watchdog[@]+"${watchdog[@]}"} "$PY" -m pytest -q -o faulthandler_timeout=300 \
    --durations=10 --junitxml="$junit" "$@" || rc=$?
  maybe_stop_docker
  if [[ -s "$junit" ]]; then
    TEST_COUNTS="$("$PY" scripts/ci_tools.py junit-counts "$junit")" || TEST_COUNTS=""
  fi
  rm -f "$junit"
  case "$rc" in
    0) return 0 ;;
    5)
      say "tests: FAILED: pytest collected no tests (exit code 5); a run that tests nothing is not a pass"
      return 1
      ;;
    124 | 137)
      say ""  # pytest was killed mid-line
      say "tests: FAILED: pytest did not finish within ${limit}s (CHECK_TESTS_TIMEOUT_S); a test hung"
      return 1
      ;;
    *) return 1 ;;
  esac
}

step_security() {
  local rc=0
  # Report first: medium and up, for reading; it never fails the build.
  say "bandit report (medium severity and up; informational):"
  "$BIN/bandit" -r bot -c pyproject.toml -q --severity-level medium --exit-zero || rc=1
  # Gate: any high-severity finding fails.
  say "bandit gate (high severity fails the build):"
  "$BIN/bandit" -r bot -c pyproject.toml -q --severity-level high || rc=1
  return "$rc"
}

step_audit() {
  local service ignore_args=() line rc=0 probe_err
  # Expired or malformed ignores stop the audit before it starts.
  local ignores
  if ! ignores="$("$PY" scripts/ci_tools.py audit-ignores "$AUDIT_IGNORE_FILE")"; then
    say "audit: FAILED: fix $AUDIT_IGNORE_FILE (message above)"
    return 1
  fi
  while IFS= read -r line; do
    [[ -n "$line" ]] && ignore_args+=("$line")
  done <<<"$ignores"

  probe_err="$(mktemp "${TMPDIR:-/tmp}/newsbot-probe.XXXXXX")"
  if ! service="$("$PY" scripts/ci_tools.py audit-probe requirements-prod.txt 2>"$probe_err")"; then
    NOT_RUN_REASON="no vulnerability service answered: $(cat "$probe_err")"
    rm -f "$probe_err"
    say "AUDIT NOT RUN: $NOT_RUN_REASON"
    return 3
  fi
  rm -f "$probe_err"
  say "audit: using the '$service' vulnerability service"

  # --disable-pip: audit exactly the hashed pins, without resolving anything again.
  # pip-audit does not follow the `-r requirements-prod.txt` line inside the dev file, so the
  # two runs cover disjoint sets: what ships, and the tools that only build and check it.
  local common=(--strict --disable-pip --require-hashes --progress-spinner off -s "$service")
  if ((${#ignore_args[@]})); then
    common+=("${ignore_args[@]}")
  fi
  say "audit: production dependencies (requirements-prod.txt)"
  "$BIN/pip-audit" "${common[@]}" -r requirements-prod.txt || rc=1
  say "audit: development tools (requirements-dev.txt)"
  "$BIN/pip-audit" "${common[@]}" -r requirements-dev.txt || rc=1
  return "$rc"
}

step_docker_lint() {
  if [[ ! -f Dockerfile ]]; then
    NOT_RUN_REASON="there is no Dockerfile yet"
    say "docker-lint NOT RUN: $NOT_RUN_REASON"
    return 3
  fi
  "$BIN/hadolint" --failure-threshold warning Dockerfile || return 1
}

step_workflow_lint() {
  local rc=0
  if [[ ! -d .github/workflows ]]; then
    say "workflow-lint: FAILED: .github/workflows is missing"
    return 1
  fi
  say "actionlint (with shellcheck on run: scripts):"
  local color_flag=-no-color
  [[ "$COLOR" == "always" ]] && color_flag=-color
  "$BIN/actionlint" "$color_flag" -shellcheck "$BIN/shellcheck" || rc=1
  say "zizmor (offline audits):"
  "$BIN/zizmor" --offline --no-progress --color "$COLOR" . || rc=1
  return "$rc"
}

# --- running and reporting -----------------------------------------------------------------

run_step() {
  local name="$1" rc=0 started state note=""
  shift
  banner "$name"
  NOT_RUN_REASON=""
  started=$SECONDS
  "step_${name//-/_}" "$@" || rc=$?
  case "$rc" in
    0) state="passed" ;;
    3)
      state="NOT RUN"
      note="$NOT_RUN_REASON"
      ;;
    *) state="FAILED" ;;
  esac
  RESULT_NAMES+=("$name")
  RESULT_STATES+=("$state")
  RESULT_TIMES+=("$((SECONDS - started))s")
  RESULT_NOTES+=("$note")
  say "--> $name: $state"
}

shorten() {
  local text="$1"
  if ((${#text} > 100)); then
    text="${text:0:100}... (full reason above)"
  fi
  printf '%s' "$text"
}

summarize() {
  local i failed=0 not_run=0 not_run_names=""
  banner "summary"
  printf '%-15s %-8s %6s  %s\n' "step" "result" "time" "note"
  for i in "${!RESULT_NAMES[@]}"; do
    printf '%-15s %-8s %6s  %s\n' "${RESULT_NAMES[$i]}" "${RESULT_STATES[$i]}" \
      "${RESULT_TIMES[$i]}" "$(shorten "${RESULT_NOTES[$i]}")"
    case "${RESULT_STATES[$i]}" in
      FAILED) failed=$((failed + 1)) ;;
      "NOT RUN")
        not_run=$((not_run + 1))
        not_run_names+=" ${RESULT_NAMES[$i]}"
        ;;
    esac
  done
  if ((not_run)); then
    say ""
    say "!!! WARNING: ${not_run} step(s) did NOT run:${not_run_names}. Not run is not passed."
    if ((STRICT)); then
      say "!!! Strict mode (GitHub Actions or CHECK_STRICT=1): a step that cannot run fails."
    else
      say "!!! Not strict here, so this alone does not fail the run; GitHub Actions is strict."
    fi
  fi
  # The plain closing line CI reads: counts from pytest's own JUnit report.
  if [[ -n "$TEST_COUNTS" ]]; then
    local passed tfailed skipped
    read -r passed tfailed skipped <<<"$TEST_COUNTS"
    say ""
    say "tests: ${passed} passed, ${tfailed} failed, ${skipped} skipped"
  fi
  if ((failed)); then
    return 1
  fi
  if ((not_run)); then
    if ((STRICT)); then
      return 1
    fi
    # A single step that could not run says so in its exit code; a full run passes.
    if ((${#RESULT_NAMES[@]} == 1)); then
      return 3
    fi
  fi
  return 0
}

main() {
  local step="${1:-all}"
  case "$step" in
    -h | --help | help)
      usage
      return 0
      ;;
    setup)
      ensure_venv
      say "check: $VENV is ready ($("$PY" --version 2>&1)); activate with: source $VENV/bin/activate"
      return 0
      ;;
    all)
      (($# <= 1)) || {
        say "check: 'all' takes no arguments" >&2
        return 2
      }
      ensure_venv
      local s
      for s in "${STEPS[@]}"; do
        run_step "$s"
      done
      ;;
    tests)
      shift
      ensure_venv
      run_step tests "$@"
      ;;
    lint | types | security | audit | docker-lint | workflow-lint)
      (($# == 1)) || {
        say "check: '$step' takes no arguments" >&2
        return 2
      }
      ensure_venv
      run_step "$step"
      ;;
    *)
      say "check: unknown step '$step'; one of: all ${STEPS[*]}" >&2
      return 2
      ;;
  esac
  summarize
}

main "$@"
