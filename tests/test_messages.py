"""zoo/messages.py: one line from an exception, a shortened repr."""

from __future__ import annotations

from zoo.messages import exception_line, first_line, short_repr, shorten


def test_shorten_keeps_short_text_and_cuts_long_text_to_the_limit():
    assert shorten("abc", 3) == "abc"
    cut = shorten("x" * 100, 10)
    assert cut == "x" * 7 + "..." and len(cut) == 10


def test_short_repr_quotes_and_bounds_a_huge_value():
    assert short_repr("a") == "'a'"
    assert len(short_repr(list(range(10_000)), 40)) == 40


def test_first_line_skips_blank_lines():
    assert first_line("\n  \n  second\nthird") == "second"
    assert first_line("") == first_line(" \n ") == ""


def test_exception_line_names_the_type_and_the_first_line_only():
    assert exception_line(ValueError("bad value\nTraceback details")) == "ValueError: bad value"
    assert exception_line(KeyError()) == "KeyError"
    assert exception_line(RuntimeError("x" * 500), limit=50) == "RuntimeError: " + "x" * 33 + "..."
    assert exception_line(OSError("ignored"), text="read safely\nmore") == "OSError: read safely"
