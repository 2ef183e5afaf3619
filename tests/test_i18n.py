"""The catalogue and the translator: every string translated, plurals, language choice.

The completeness test extracts the strings from ``bot/`` itself (Babel's extractor, in
process), so it fails for a new untranslated string even when nobody regenerated the
committed ``.pot``. The checker's own rules (placeholders, tags, fuzzy, stale template) are
tested on small catalogues built here, so a rule that stopped working would show.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from babel.messages.catalog import Catalog

from bot.i18n import (
    LANGUAGES,
    catalogue_path,
    chat_translator,
    language_name,
    pick_language,
    supported_language,
    translator,
)

ROOT = Path(__file__).resolve().parent.parent


def load_i18n_tool() -> ModuleType:
    """Import scripts/i18n_tool.py by path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "newsbot_i18n_tool", ROOT / "scripts/i18n_tool.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tool = load_i18n_tool()


@pytest.fixture(scope="module")
def extracted() -> Catalog:
    template, warnings = tool.extract(ROOT)
    assert warnings == []  # e.g. an f-string inside _(): it can never be translated
    return template


# --------------------------------------------------------------------------- the catalogue


def test_the_code_has_strings_to_translate(extracted: Catalog) -> None:
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in extracted if m.id}
    # One of each marking: _() in a handler, t.gettext, t.ngettext, N_ constant.
    assert "No news right now." in ids
    assert "a digest every %(interval)s" in ids
    assert "📰 Latest %(n)d" in ids
    assert "this does not look like an RSS or Atom feed" in ids


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_every_string_in_the_code_has_a_checked_translation(
    extracted: Catalog, language: str
) -> None:
    po = tool.read_catalog(catalogue_path(language), language)
    assert tool.translation_problems(extracted, po, language) == []
    assert tool.compile_problems(po, language) == []


def test_the_russian_catalogue_compiles_and_translates() -> None:
    t = translator("ru")
    assert t.language == "ru"
    assert t.gettext("No news right now.") == "Пока новостей нет."
    assert t.gettext("a message nobody wrote") == "a message nobody wrote"


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, "📰 1 свежая новость"),
        (2, "📰 2 свежие новости"),
        (5, "📰 5 свежих новостей"),
        (11, "📰 11 свежих новостей"),
        (21, "📰 21 свежая новость"),
    ],
)
def test_russian_has_three_plural_forms(n: int, expected: str) -> None:
    form = translator("ru").ngettext("📰 Latest %(n)d", "📰 Latest %(n)d", n)
    assert form % {"n": n} == expected
    assert translator("en").ngettext("📰 Latest %(n)d", "📰 Latest %(n)d", n) == "📰 Latest %(n)d"


# --------------------------------------------------------------------------- choosing


@pytest.mark.parametrize(
    ("chosen", "user_code", "expected"),
    [
        (None, "ru", "ru"),
        (None, "ru-RU", "ru"),
        (None, "RU", "ru"),
        (None, "en-US", "en"),
        (None, "pt-br", "en"),  # unsupported: English
        (None, None, "en"),
        (None, "", "en"),
        ("ru", "en", "ru"),  # the chat's choice wins
        ("en", "ru", "en"),
        ("de", "ru", "ru"),  # a stored choice the bot no longer speaks is ignored
    ],
)
def test_pick_language(chosen: str | None, user_code: str | None, expected: str) -> None:
    assert pick_language(chosen, user_code) == expected


def test_supported_language_only_names_languages_the_bot_speaks() -> None:
    assert supported_language("ru-RU") == "ru"
    assert supported_language("uk") is None
    assert supported_language(None) is None


def test_an_unknown_language_gets_english() -> None:
    t = translator("xx")
    assert t.language == "en"
    assert t.gettext("No news right now.") == "No news right now."


def test_posts_use_the_chats_choice_or_english() -> None:
    assert chat_translator("ru").language == "ru"
    assert chat_translator(None).language == "en"


def test_languages_are_named_in_themselves() -> None:
    assert [language_name(code) for code in ("en", "ru")] == ["English", "Русский"]


# --------------------------------------------------------------------------- the checker


def catalogue(entries: dict[str | tuple[str, str], str | tuple[str, ...]]) -> Catalog:
    po = Catalog(locale="ru", domain="newsbot")
    for msgid, msgstr in entries.items():
        po.add(msgid, msgstr)
    return po


def template_of(*ids: str | tuple[str, str]) -> Catalog:
    template = Catalog(domain="newsbot")
    for msgid in ids:
        template.add(msgid)
    return template


def test_the_checker_passes_a_complete_catalogue() -> None:
    template = template_of("Hi <b>%(name)s</b>", ("%(n)d item", "%(n)d items"))
    po = catalogue(
        {
            "Hi <b>%(name)s</b>": "Привет, <b>%(name)s</b>",
            ("%(n)d item", "%(n)d items"): ("%(n)d штука", "%(n)d штуки", "%(n)d штук"),
        }
    )
    assert tool.translation_problems(template, po, "ru") == []


@pytest.mark.parametrize(
    ("msgstr", "complaint"),
    [
        ("", "no translation"),
        ("Привет, <b>%(nom)s</b>", "placeholders"),
        ("Привет, <b>%(name)d</b>", "placeholders"),
        ("Привет, %(name)s", "HTML tags"),
        ("Привет, <i>%(name)s</i>", "HTML tags"),
    ],
)
def test_the_checker_refuses_a_broken_translation(msgstr: str, complaint: str) -> None:
    template = template_of("Hi <b>%(name)s</b>")
    [problem] = tool.translation_problems(template, catalogue({"Hi <b>%(name)s</b>": msgstr}), "ru")
    assert complaint in problem


def test_the_checker_refuses_missing_fuzzy_obsolete_and_short_plurals() -> None:
    template = template_of("kept", "fuzzy", "missing", ("%(n)d one", "%(n)d many"))
    po = catalogue(
        {
            "kept": "оставлено",
            "fuzzy": "нечётко",
            "gone": "удалено",
            ("%(n)d one", "%(n)d many"): ("%(n)d один", "%(n)d много"),
        }
    )
    fuzzy = po.get("fuzzy")
    assert fuzzy is not None
    fuzzy.flags.add("fuzzy")
    problems = "\n".join(tool.translation_problems(template, po, "ru"))
    assert "'fuzzy': the translation is fuzzy" in problems
    assert "'missing': no translation" in problems
    assert "'gone': no longer in the code" in problems
    assert "2 plural forms, the language has 3" in problems
    assert "'kept'" not in problems


def test_every_plural_form_must_carry_the_number() -> None:
    # Russian's first form also serves 21, 31…: it cannot drop the number.
    template = template_of(("one item", "%(n)d items"))
    po = catalogue({("one item", "%(n)d items"): ("одна штука", "%(n)d штуки", "%(n)d штук")})
    [problem] = tool.translation_problems(template, po, "ru")
    assert "(form 0): placeholders" in problem


def test_a_stale_template_is_reported_with_what_changed() -> None:
    committed = template_of("old", "same")
    [problem] = tool.stale_problems(template_of("new", "same"), committed)
    assert "stale" in problem
    assert "new: 'new'" in problem
    assert "gone: 'old'" in problem
    assert tool.stale_problems(template_of("same"), template_of("same")) == []
    assert "missing" in tool.stale_problems(template_of("same"), None)[0]


def make_tree(tmp_path: Path, source: str) -> Path:
    (tmp_path / "babel.cfg").write_text((ROOT / "babel.cfg").read_text())
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "mod.py").write_text(source)
    return tmp_path


def test_extraction_finds_every_marking_and_translator_comments(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        "X = N_('constant')\n"
        "def f(t, n):\n"
        "    _ = t.gettext\n"
        "    # TRANSLATORS: shown after /news\n"
        "    _('handler')\n"
        "    t.gettext('service')\n"
        "    t.ngettext('%(n)d one', '%(n)d many', n)\n"
        "    print('not marked')\n",
    )
    template, warnings = tool.extract(root)
    assert warnings == []
    found = {m.id: m for m in template if m.id}
    assert set(found) == {"constant", "handler", "service", ("%(n)d one", "%(n)d many")}
    assert found["handler"].auto_comments == ["shown after /news"]
    assert found["handler"].locations == [("bot/mod.py", 5)]


def test_an_f_string_inside_the_marker_is_a_problem(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "def f(_, n):\n    return _(f'{n} items')\n")
    template, warnings = tool.extract(root)
    assert not [m for m in template if m.id]
    [warning] = warnings
    assert "f-string" in warning
    assert "mod.py:2" in warning


def test_a_catalogue_that_does_not_compile_is_reported() -> None:
    po = catalogue({"x": "икс"})
    po.charset = "no-such-charset"
    [problem] = tool.compile_problems(po, "ru")
    assert "does not compile" in problem


def test_the_check_command_fails_on_a_new_untranslated_string(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "def f(t):\n    return t.gettext('brand new')\n")
    assert tool.write_template(root) is True  # (bot/locales/ did not exist yet)
    assert tool.write_template(root) is False  # unchanged: left alone
    po_dir = tool.po_path(root, "ru")
    po_dir.parent.mkdir(parents=True)
    po_dir.write_bytes(tool.render(Catalog(locale="ru", domain="newsbot")))
    assert tool.update_catalogues(root) == ["ru"]
    problems = tool.check(root)
    assert problems == ["ru: 'brand new': no translation"]
