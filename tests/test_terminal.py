"""The terminal's tables: plain fixed-width text anywhere but a terminal, colour on one."""

from __future__ import annotations

import io

import pytest

from simq import terminal


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a colour terminal's environment says; rich reads it to pick its colours.
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "120")


ROWS = [["throughput (msg/s)", "0.8", "0.796 ± 0.011", "yes"],
        ["latency (s)", "1", "4.99 ± 0.33", "no"]]
HEADER = ["quantity", "predicted", "measured", "holds"]


@pytest.mark.parametrize(("cell", "number"), [
    ("1,234", True), ("-0.5%", True), ("+1.2%", True), ("0.80 ± 0.01", True), ("inf", True),
    ("-", True), ("2.1e-05", True), ("yes", False), ("M/M/1 (exact)", False), ("", False),
])
def test_a_cell_reads_as_a_number_or_a_word(cell: str, number: bool) -> None:
    assert terminal.is_number(cell) is number


def test_plain_text_has_no_escape_codes_no_trailing_spaces_and_fits() -> None:
    text = terminal.plain(terminal.table(HEADER, ROWS * 3), terminal.line("x " * 80))
    assert "\x1b" not in text
    lines = text.splitlines()
    assert all(line == line.rstrip() and len(line) <= terminal.WIDTH for line in lines)
    assert lines[0].split() == HEADER
    # Numbers line up on the right, words on the left.
    assert lines[1].index("0.796") < lines[2].index("4.99")
    assert lines[1].startswith("throughput") and lines[1].endswith("yes")


def test_a_narrow_width_folds_the_columns_instead_of_overflowing() -> None:
    long = [["a queue with a long descriptive name", "12.5 ± 0.3", "words " * 12, "no"]]
    text = terminal.plain(terminal.table(["name", "value", "note", "holds"], long), width=40)
    assert all(len(line) <= 40 for line in text.splitlines())
    assert "12.5 ± 0.3" in text  # a number is never split across lines


def test_pairs_wrap_between_items_never_inside_one() -> None:
    items = [f"item{i} {i * 1000:,}" for i in range(12)]
    text = terminal.plain(terminal.pairs([("messages", items)]), width=50)
    assert len(text.splitlines()) > 1
    for item in items:
        assert item in text


def test_show_prints_plain_text_into_a_pipe() -> None:
    out = io.StringIO()
    terminal.show(terminal.table(HEADER, ROWS), terminal.line("after"), file=out)
    assert out.getvalue() == terminal.plain(terminal.table(HEADER, ROWS),
                                            terminal.line("after")) + "\n"


@pytest.mark.usefixtures("colour_terminal")
def test_show_colours_the_verdicts_on_a_terminal() -> None:
    out = _Terminal()
    terminal.show(terminal.table(HEADER, ROWS, verdicts=("holds",)), file=out)
    text = out.getvalue()
    assert "\x1b[" in text
    green, red = "\x1b[32myes", "\x1b[31mno"
    assert green in text and red in text
    # Only the verdict column is coloured: "no" inside a word or another column is not.
    plain = _Terminal()
    terminal.show(terminal.table(HEADER, ROWS), file=plain)
    assert green not in plain.getvalue() and red not in plain.getvalue()


@pytest.mark.usefixtures("colour_terminal")
def test_no_color_is_respected_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = _Terminal()
    terminal.show(terminal.table(HEADER, ROWS, verdicts=("holds",)), file=out)
    assert "\x1b[32m" not in out.getvalue() and "\x1b[31m" not in out.getvalue()


def test_a_name_with_brackets_is_printed_as_written() -> None:
    # rich markup is never read from a cell: a scenario may be called "[bold]x".
    text = terminal.plain(terminal.table(["name"], [["[bold]x[/bold]"]]),
                          terminal.line("[red]y"))
    assert "[bold]x[/bold]" in text and "[red]y" in text


def test_verbatim_text_is_never_folded() -> None:
    text = "quantity  " + "x" * 150 + "  within CI\nshort  outside CI"
    assert terminal.plain(terminal.verbatim(text)) == text


@pytest.mark.usefixtures("colour_terminal")
def test_verbatim_text_colours_the_verdict_ending_a_line() -> None:
    out = _Terminal()
    terminal.show(terminal.verbatim("a  within CI\nb  outside CI\nwithin CI here  no CI"),
                  file=out)
    text = out.getvalue()
    assert "\x1b[32mwithin CI" in text and "outside CI\x1b[0m" in text
    assert text.count("\x1b[32m") == 1  # not the words that do not end a line
