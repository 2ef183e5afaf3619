"""/filter's syntax: which subscription, which verb, which terms — and what the filters become."""

from __future__ import annotations

import pytest

from bot.models import NO_FILTERS, Filters
from bot.services.filter_command import FilterCommand, FilterUsage, parse_filter_command
from bot.services.filters import MAX_TERMS, NoTerms, TermTooLong, TooManyTerms


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", FilterCommand(None, "show")),
        ("   \n ", FilterCommand(None, "show")),
        ("3", FilterCommand(3, "show")),
        (" 12 ", FilterCommand(12, "show")),
        ("include python, rust", FilterCommand(None, "include", ("python", "rust"))),
        ("2 INCLUDE Python", FilterCommand(2, "include", ("Python",))),
        ("exclude ads\nsponsored post", FilterCommand(None, "exclude", ("ads", "sponsored post"))),
        ('1 exclude "machine learning"', FilterCommand(1, "exclude", ("machine learning",))),
        ("clear", FilterCommand(None, "clear")),
        ("4 clear Include", FilterCommand(4, "clear", which="include")),
        ("clear exclude", FilterCommand(None, "clear", which="exclude")),
    ],
)
def test_parses_every_form(raw: str, expected: FilterCommand) -> None:
    assert parse_filter_command(raw) == expected


@pytest.mark.parametrize(
    "raw", ["sometimes python", "2 remove ads", "clear everything", "clear include exclude"]
)
def test_other_verbs_and_clear_arguments_are_usage_errors(raw: str) -> None:
    with pytest.raises(FilterUsage):
        parse_filter_command(raw)


def test_term_limits_come_from_parse_terms() -> None:
    with pytest.raises(NoTerms):
        parse_filter_command("include  , ,")
    with pytest.raises(NoTerms):
        parse_filter_command("3 exclude")
    with pytest.raises(TooManyTerms) as many:
        parse_filter_command("include " + ", ".join(f"w{n}" for n in range(MAX_TERMS + 1)))
    with pytest.raises(TermTooLong):
        parse_filter_command("exclude " + "x" * 60)
    assert many.value.count == MAX_TERMS + 1


BOTH = Filters(include=("python",), exclude=("ads",))


@pytest.mark.parametrize(
    ("command", "before", "after"),
    [
        (FilterCommand(None, "include", ("rust",)), BOTH, Filters(("rust",), ("ads",))),
        (FilterCommand(None, "exclude", ("spam",)), BOTH, Filters(("python",), ("spam",))),
        (FilterCommand(None, "include", ("rust",)), NO_FILTERS, Filters(include=("rust",))),
        (FilterCommand(None, "clear"), BOTH, NO_FILTERS),
        (FilterCommand(None, "clear", which="include"), BOTH, Filters(exclude=("ads",))),
        (FilterCommand(None, "clear", which="exclude"), BOTH, Filters(include=("python",))),
        (FilterCommand(None, "clear", which="exclude"), Filters(exclude=("ads",)), NO_FILTERS),
        (FilterCommand(None, "clear"), NO_FILTERS, NO_FILTERS),
        (FilterCommand(2, "show"), BOTH, BOTH),
    ],
)
def test_apply_changes_only_what_the_command_names(
    command: FilterCommand, before: Filters, after: Filters
) -> None:
    result = command.apply(before)
    assert result == after
    assert bool(result) == bool(after)  # an emptied value is "no filters", stored as such
