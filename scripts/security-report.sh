#!/usr/bin/env bash
# Print the current bandit and pip-audit results as Markdown, ready to paste into
# docs/SECURITY_NOTES_PHASE2.md ("Dependencies, CI and security scans"). Informational:
# always exits 0; scripts/check.sh security/audit are the gates.
#
#   scripts/security-report.sh > /tmp/report.md
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

BIN=.venv/bin
if [[ ! -x "$BIN/python" ]]; then
  bash scripts/check.sh setup >&2 || exit 1
fi

fence() { printf '```text\n'; cat; printf '```\n'; }

# shellcheck disable=SC2016  # the backticks are Markdown, not command substitution
printf '#### bandit %s (`bandit -r bot -c pyproject.toml --severity-level medium`), %s\n\n' \
  "$("$BIN/bandit" --version 2>/dev/null | head -n1 | awk '{print $2}')" "$(date -u +%Y-%m-%d)"
"$BIN/bandit" -r bot -c pyproject.toml -q --severity-level medium --exit-zero 2>&1 |
  grep -v '^Run started' | fence
printf '\n'

printf '#### pip-audit %s, %s\n\n' \
  "$("$BIN/pip-audit" --version 2>/dev/null | awk '{print $2}')" "$(date -u +%Y-%m-%d)"
probe_err="$(mktemp)"
if service="$("$BIN/python" scripts/ci_tools.py audit-probe requirements-prod.txt 2>"$probe_err")"; then
  for lock in requirements-prod.txt requirements-dev.txt; do
    # shellcheck disable=SC2016  # Markdown backticks
    printf '`pip-audit --strict --disable-pip --require-hashes -s %s -r %s`\n\n' "$service" "$lock"
    "$BIN/pip-audit" --strict --disable-pip --require-hashes --progress-spinner off \
      -s "$service" -r "$lock" 2>&1 | fence
    printf '\n'
  done
else
  printf 'AUDIT NOT RUN: no vulnerability service answered: %s\n' "$(cat "$probe_err")" | fence
fi
rm -f "$probe_err"
exit 0
