"""What a ``/filter`` command asks for: its text parsed into a :class:`FilterCommand`.

``/filter [n] [include <terms> | exclude <terms> | clear [include|exclude]]`` — without a
verb it shows the filters, ``n`` (a number from ``/list``) picks one subscription instead
of the whole chat. The terms are read by :func:`bot.services.filters.parse_terms`, which
owns their limits; this module only knows the command's shape, and
:meth:`FilterCommand.apply` says what the stored filters become. Pure: the handler
(:mod:`bot.handlers.filters`) finds the chat, checks rights and stores the result.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

from bot.models import NO_FILTERS, Filters
from bot.services.filters import parse_terms

logger = logging.getLogger(__name__)

# An optional feed number, the verb (any word; checked below), and the rest with its commas
# and line breaks kept (they separate terms).
_FILTER_VERB_RE = re.compile(r"\s*(?:(\d+)\s*)?(\S*)\s*(.*)", re.DOTALL)

Verb = Literal["show", "include", "exclude", "clear"]
Which = Literal["include", "exclude", "both"]


class FilterUsage(ValueError):
    """A /filter that is neither show, include, exclude nor clear (the handler shows usage)."""


@dataclass(frozen=True, slots=True)
class FilterCommand:
    """A parsed ``/filter``.

    Attributes:
        n: the subscription's number in ``/list``; None for the chat's own filters.
        verb: show them, replace the include or exclude list, or clear.
        terms: the new list for include and exclude (as typed, tidied).
        which: what ``clear`` empties.
    """

    n: int | None
    verb: Verb
    terms: tuple[str, ...] = ()
    which: Which = "both"

    def apply(self, filters: Filters) -> Filters:
        """The filters after this command (``show`` changes nothing).

        Setting one list keeps the other; an empty result is :data:`~bot.models.NO_FILTERS`
        so a cleared chat stores no filters at all.
        """
        include, exclude = filters.include, filters.exclude
        if self.verb == "show":
            return filters
        if self.verb == "include":
            include = self.terms
        elif self.verb == "exclude":
            exclude = self.terms
        else:
            include = () if self.which in ("include", "both") else include
            exclude = () if self.which in ("exclude", "both") else exclude
        return Filters(include, exclude) if include or exclude else NO_FILTERS


def parse_filter_command(raw: str) -> FilterCommand:
    """Read ``[n] [include|exclude <terms> | clear [include|exclude]]``.

    Args:
        raw: the text after the command (and after a target chat, if one was named).

    Raises:
        FilterUsage: an unknown verb or a bad ``clear`` argument.
        FilterError: the terms break a limit (see :func:`bot.services.filters.parse_terms`).
    """
    match = _FILTER_VERB_RE.fullmatch(raw)
    if match is None:  # pragma: no cover - the pattern matches any text
        raise FilterUsage(raw)
    number, verb, rest = match.group(1), match.group(2).lower(), match.group(3).strip()
    n = int(number) if number else None
    if not verb:
        return FilterCommand(n, "show")
    if verb == "include":
        return FilterCommand(n, "include", parse_terms(rest))
    if verb == "exclude":
        return FilterCommand(n, "exclude", parse_terms(rest))
    if verb == "clear":
        which = rest.lower()
        if which == "":
            return FilterCommand(n, "clear")
        if which == "include":
            return FilterCommand(n, "clear", which="include")
        if which == "exclude":
            return FilterCommand(n, "clear", which="exclude")
    raise FilterUsage(raw)
