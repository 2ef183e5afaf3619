#!/usr/bin/env bash
# The translation catalogue: find new strings, merge them into the translations, check them.
#
#   scripts/i18n.sh extract   # marked strings in bot/ -> bot/locales/newsbot.pot
#   scripts/i18n.sh update    # newsbot.pot -> bot/locales/<lang>/LC_MESSAGES/newsbot.po
#   scripts/i18n.sh check     # fails on a stale .pot, a missing, fuzzy or broken translation
#
# Adding a string: mark it (_("..."), t.gettext, t.ngettext, N_), run extract then update,
# translate the new empty msgstr entries in each .po, and run check. See CONTRIBUTING.md.
# The work is done by scripts/i18n_tool.py on Babel's library (keywords and rules live there);
# scripts/check.sh runs `check` in its lint step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=.venv/bin/python
if [[ ! -x "$PY" ]]; then
  echo "i18n: $PY not found; run 'scripts/check.sh setup' first" >&2
  exit 1
fi

case "${1:-}" in
  extract | update | check)
    exec "$PY" scripts/i18n_tool.py "$1"
    ;;
  *)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2
    exit 2
    ;;
esac
