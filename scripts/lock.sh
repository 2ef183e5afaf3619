#!/usr/bin/env bash
# Regenerate the hash-pinned lock files from the hand-edited .in files.
#
#   scripts/lock.sh                      # re-lock, keeping current pins where still valid
#   scripts/lock.sh --upgrade            # move everything to the newest allowed versions
#   scripts/lock.sh -P httpx             # move one package (pip-compile --upgrade-package)
#
# Why a script: the two files must be compiled in order (dev is constrained by the prod
# lock, `-c requirements-prod.txt` in requirements-dev.in) and requirements-dev.txt must
# then start with `-r requirements-prod.txt` so one `pip install --require-hashes -r
# requirements-dev.txt` installs both. pip-compile cannot write that line itself.
# Extra arguments go to both pip-compile runs unchanged.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PIP_COMPILE=.venv/bin/pip-compile
if [[ ! -x "$PIP_COMPILE" ]]; then
  echo "lock: $PIP_COMPILE not found; run 'scripts/check.sh lint' once to create the venv" >&2
  exit 1
fi

# The header of each lock file names this script as the command that made it.
export CUSTOM_COMPILE_COMMAND="scripts/lock.sh"
# No index URLs or find-links in the output: a developer's local pip config must not
# leak into the committed files, and pip's defaults are right for everyone else.
common=(
  --quiet
  --generate-hashes
  --allow-unsafe
  --strip-extras
  --no-emit-index-url
  --no-emit-find-links
  --no-emit-trusted-host
)

"$PIP_COMPILE" "${common[@]}" "$@" --output-file requirements-prod.txt requirements-prod.in
"$PIP_COMPILE" "${common[@]}" "$@" --output-file requirements-dev.txt requirements-dev.in

# Post-step: drop the pins that requirements-prod.txt already carries (same versions, by
# the -c constraint) and make the dev file include the prod file on its first line.
.venv/bin/python - <<'PY'
import re
from pathlib import Path

NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


prod = {
    norm(m.group(1))
    for line in Path("requirements-prod.txt").read_text().splitlines()
    if (m := NAME.match(line))
}
lines = Path("requirements-dev.txt").read_text().splitlines()
# "-r" must be the very first line: tests/test_repo_hygiene.py checks it.
out: list[str] = ["-r requirements-prod.txt"]
skip = False
for line in lines:
    m = NAME.match(line)
    if m:
        skip = norm(m.group(1)) in prod
    elif line and not line.startswith((" ", "\t")):
        skip = False  # a top-level line that is not a pin ends the previous block
    if not skip:
        out.append(line)
Path("requirements-dev.txt").write_text("\n".join(out).rstrip("\n") + "\n")
PY
echo "lock: wrote requirements-prod.txt and requirements-dev.txt; review 'git diff' before committing"
