"""The translation catalogue's tooling: extract, update and check (``scripts/i18n.sh`` runs it).

Everything runs in-process on Babel's own library (the engine behind ``pybabel``), so the
keywords, the mapping and the rules below are defined once, for the script, the lint step
and ``tests/test_i18n.py`` alike:

* ``extract``: every marked string under ``bot/`` (mapping in ``babel.cfg``; keywords
  ``_``, ``gettext``, ``ngettext:1,2``, ``N_``; ``# TRANSLATORS:`` comments kept) into
  ``bot/locales/newsbot.pot``. Sorted by msgid, file names without line numbers: a string
  moving within a file changes nothing, so diffs stay small and merges clean. The file is
  rewritten only when its messages changed (its creation date would churn otherwise).
* ``update``: merge the ``.pot`` into every language's ``.po``, like ``pybabel update
  --no-fuzzy-matching --ignore-obsolete``: a changed msgid becomes a new, untranslated entry
  (never a fuzzy guess that ships silently), and translations of removed strings go away.
* ``check``: fail when the ``.pot`` is stale against the code, a msgid lacks a translation, a
  translation is fuzzy, placeholders or HTML tags differ between msgid and msgstr, an
  f-string hides inside ``_()``, or a ``.po`` does not compile.

``pybabel extract -F babel.cfg --no-default-keywords -k _ -k gettext -k ngettext:1,2 -k N_
-c TRANSLATORS: -s --sort-output --add-location=file bot`` gives the same template by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import gettext
import io
import logging
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po, write_po

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "newsbot"
LANGUAGES = ("ru",)  # every language but English, the source language (msgids)
KEYWORDS: dict[str, tuple[int, ...] | None] = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "N_": None,
}
COMMENT_TAGS = ("TRANSLATORS:",)
# Header fields, fixed so that regenerating the files changes only what changed.
VERSION = "1"
COPYRIGHT = "newsbot contributors"
BUGS = "see CONTRIBUTING.md"
TRANSLATOR = "newsbot contributors"
HEADER_COMMENT = (
    "# The strings of newsbot, extracted from bot/ by scripts/i18n.sh extract.\n"
    "# Do not edit by hand: mark strings in the code and run the script."
)
WIDTH = 100
# printf-style conversions as Python's % operator reads them; "%%" is a literal percent.
_PLACEHOLDER_RE = re.compile(
    r"%(?:\((\w+)\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]"
)
# The tags of Telegram's HTML parse mode; "<url>" in a command description is text, not a tag.
_TAG_RE = re.compile(
    r"</?(?:b|strong|i|em|u|ins|s|strike|del|a|code|pre|blockquote|tg-spoiler|tg-emoji|span)"
    r"(?:\s[^<>]*)?>"
)


def locales_dir(root: Path) -> Path:
    """Where the catalogues live under a checkout ``root``."""
    return root / "bot" / "locales"


def pot_path(root: Path) -> Path:
    """The committed template."""
    return locales_dir(root) / f"{DOMAIN}.pot"


def po_path(root: Path, language: str) -> Path:
    """The catalogue of ``language`` (the path :func:`bot.i18n.catalogue_path` reads)."""
    return locales_dir(root) / language / "LC_MESSAGES" / f"{DOMAIN}.po"


# --------------------------------------------------------------------------- extracting


def extract(root: Path = ROOT) -> tuple[Catalog, list[str]]:
    """Every marked string under ``root`` as a template, plus extraction warnings.

    Babel skips an f-string inside ``_()`` with a warning on stderr (it cannot be a msgid);
    those warnings are captured and returned as problems rather than scrolling past.
    """
    with (root / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle, "babel.cfg")
    template = Catalog(
        domain=DOMAIN,
        header_comment=HEADER_COMMENT,
        project=DOMAIN,
        version=VERSION,
        copyright_holder=COPYRIGHT,
        msgid_bugs_address=BUGS,
        last_translator=TRANSLATOR,
        language_team=TRANSLATOR,
        charset="utf-8",
        fuzzy=False,
    )
    warnings = io.StringIO()
    with contextlib.redirect_stderr(warnings):
        for filename, lineno, message, comments, context in extract_from_dir(
            root,
            method_map,
            options_map,
            keywords=KEYWORDS,
            comment_tags=COMMENT_TAGS,
            strip_comment_tags=True,
        ):
            template.add(
                message,
                None,
                [(Path(filename).as_posix(), lineno)],
                auto_comments=comments,
                context=context,
            )
    problems = [line.strip() for line in warnings.getvalue().splitlines() if line.strip()]
    return template, problems


def render(catalog: Catalog, *, header: bool = True) -> bytes:
    """The catalogue as the committed files hold it (sorted, locations without lines)."""
    out = io.BytesIO()
    write_po(
        out,
        catalog,
        width=WIDTH,
        omit_header=not header,
        sort_output=True,
        ignore_obsolete=True,
        include_lineno=False,
    )
    return out.getvalue()


def read_catalog(path: Path, language: str | None = None) -> Catalog:
    """Read a ``.po``/``.pot`` file."""
    with path.open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


# --------------------------------------------------------------------------- checking


def placeholders(text: str) -> Counter[str]:
    """The ``%``-conversions in ``text`` (named ones by name and type), ``%%`` left out."""
    found = (m.group(0) for m in _PLACEHOLDER_RE.finditer(text))
    return Counter(p for p in found if p != "%%")


def tags(text: str) -> Counter[str]:
    """The HTML tags in ``text``, as written (a translation must keep every one)."""
    return Counter(_TAG_RE.findall(text))


def stale_problems(extracted: Catalog, committed: Catalog | None) -> list[str]:
    """Why the committed template differs from what the code holds (empty: fresh)."""
    if committed is None:
        return ["bot/locales/newsbot.pot is missing: run scripts/i18n.sh extract"]
    if render(extracted, header=False) == render(committed, header=False):
        return []
    now = {m.id for m in extracted if m.id}
    before = {m.id for m in committed if m.id}
    added = sorted(str(i) for i in now - before)
    removed = sorted(str(i) for i in before - now)
    detail = "".join(f"\n  new: {i!r}" for i in added[:10]) + "".join(
        f"\n  gone: {i!r}" for i in removed[:10]
    )
    return ["bot/locales/newsbot.pot is stale: run scripts/i18n.sh extract" + detail]


def _forms(message: Message) -> list[str]:
    string = message.string
    if isinstance(string, (list, tuple)):
        return [str(s) for s in string]
    return [str(string or "")]


def message_problems(message: Message, num_plurals: int) -> list[str]:
    """What is wrong with one translated entry (empty: it may ship)."""
    ids = [str(i) for i in message.id] if isinstance(message.id, (list, tuple)) else [message.id]
    name = repr(ids[0])
    forms = _forms(message)
    if message.fuzzy:
        return [f"{name}: the translation is fuzzy (check it, then remove the fuzzy flag)"]
    if not all(forms):
        return [f"{name}: no translation"]
    problems = []
    if message.pluralizable and len(forms) != num_plurals:
        problems.append(f"{name}: {len(forms)} plural forms, the language has {num_plurals}")
    wanted = placeholders(ids[-1]) | placeholders(ids[0])
    wanted_tags = tags(ids[0])
    for n, form in enumerate(forms):
        where = f"{name} (form {n})" if message.pluralizable else name
        if set(placeholders(form)) != set(wanted):
            problems.append(
                f"{where}: placeholders {sorted(placeholders(form))} differ from the "
                f"msgid's {sorted(wanted)}"
            )
        if tags(form) != wanted_tags:
            problems.append(
                f"{where}: HTML tags {sorted(tags(form).elements())} differ from the "
                f"msgid's {sorted(wanted_tags.elements())}"
            )
    return problems


def translation_problems(template: Catalog, po: Catalog, language: str) -> list[str]:
    """Every msgid of ``template`` must have a checked translation in ``po``, and no more."""
    num_plurals = get_plural(language).num_plurals
    problems: list[str] = []
    if po.num_plurals != num_plurals:
        problems.append(f"{language}: Plural-Forms says {po.num_plurals}, CLDR {num_plurals}")
    for wanted in template:
        if not wanted.id:
            continue
        message = po.get(wanted.id, context=wanted.context)
        if message is None:
            problems.append(f"{wanted.id!r}: no translation (run scripts/i18n.sh update)")
            continue
        if message.pluralizable != wanted.pluralizable:
            problems.append(f"{wanted.id!r}: plural in one catalogue, not in the other")
            continue
        problems += message_problems(message, num_plurals)
    known = {(m.id if isinstance(m.id, str) else m.id[0], m.context) for m in template if m.id}
    for message in po:
        key = (message.id if isinstance(message.id, str) else message.id[0], message.context)
        if message.id and key not in known:
            problems.append(f"{key[0]!r}: no longer in the code (run scripts/i18n.sh update)")
    return [f"{language}: {p}" for p in problems]


def compile_problems(po: Catalog, language: str) -> list[str]:
    """Compile ``po`` as :func:`bot.i18n.translator` does and load the result."""
    try:
        compiled = io.BytesIO()
        write_mo(compiled, po)
        compiled.seek(0)
        gettext.GNUTranslations(compiled)
    except Exception as exc:
        return [f"{language}: the catalogue does not compile: {type(exc).__name__}: {exc}"]
    return []


def check(root: Path = ROOT) -> list[str]:
    """Everything ``scripts/i18n.sh check`` fails on, as readable lines (empty: all good)."""
    template, problems = extract(root)
    pot = pot_path(root)
    problems += stale_problems(template, read_catalog(pot) if pot.exists() else None)
    for language in LANGUAGES:
        path = po_path(root, language)
        try:
            po = read_catalog(path, language)
        except Exception as exc:
            problems.append(f"{language}: cannot read {path}: {type(exc).__name__}: {exc}")
            continue
        problems += translation_problems(template, po, language)
        problems += compile_problems(po, language)
    return problems


# --------------------------------------------------------------------------- writing


def write_template(root: Path = ROOT) -> bool:
    """``extract``: write the ``.pot`` if its messages changed; True when it was written."""
    template, warnings = extract(root)
    for warning in warnings:
        logger.warning("%s", warning)
    pot = pot_path(root)
    if pot.exists() and not stale_problems(template, read_catalog(pot)):
        return False
    pot.parent.mkdir(parents=True, exist_ok=True)
    pot.write_bytes(render(template))
    return True


def update_catalogues(root: Path = ROOT) -> list[str]:
    """``update``: merge the committed ``.pot`` into each ``.po``; return the languages changed."""
    template = read_catalog(pot_path(root))
    changed = []
    for language in LANGUAGES:
        path = po_path(root, language)
        po = read_catalog(path, language)
        before = render(po, header=False)
        po.update(template, no_fuzzy_matching=True, update_creation_date=False)
        po.obsolete.clear()
        po.project, po.version, po.msgid_bugs_address = DOMAIN, VERSION, BUGS
        if render(po, header=False) != before:
            path.write_bytes(render(po))
            changed.append(language)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``extract``, ``update`` or ``check``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("extract", "update", "check"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="i18n: %(message)s")
    if args.command == "extract":
        wrote = write_template()
        logger.info("%s", "wrote bot/locales/newsbot.pot" if wrote else "newsbot.pot is current")
        return 0
    if args.command == "update":
        changed = update_catalogues()
        logger.info("updated: %s", ", ".join(changed) if changed else "nothing to update")
        return 0
    problems = check()
    _report(problems)
    return 1 if problems else 0


def _report(problems: Iterable[str]) -> None:
    lines = list(problems)
    for line in lines:
        logger.error("%s", line)
    if not lines:
        logger.info("catalogues are complete and current")


if __name__ == "__main__":
    sys.exit(main())
