"""The run table shows evidence as it is: no value eaten as markup, socket addresses as ip:port,
and hidden rows counted (issue 23, item 7). Rendered by rich itself, as the terminal gets it."""

from __future__ import annotations

from rich.console import Console

from hoplab import report
from hoplab.checks import Check, ExerciseResult, Status, check


def _render(table: object) -> str:
    console = Console(width=250, record=True, color_system=None)
    with console.capture() as cap:
        console.print(table)
    return cap.get()


def _result(name: str, *checks: Check) -> ExerciseResult:
    return ExerciseResult(name, checks, 0.5)


def test_bracketed_ipv6_address_is_shown_whole() -> None:
    c = check("reaches the server", False, "[fd77:2::64]:80 answers", "[fd77:2::64]:80 refused")
    text = _render(report.table([_result("dual-stack-bind", c)]))
    assert "[fd77:2::64]:80 answers" in text
    assert "[fd77:2::64]:80 refused" in text


def test_markup_like_names_and_hints_are_shown_whole() -> None:
    c = Check("[bold]x[/bold] check", Status.FAIL, "[red]e", "o", hint="see [link]here")
    text = _render(report.checks_table("t", (c,)))
    assert "[bold]x[/bold] check" in text
    assert "[red]e" in text
    assert "hint: see [link]here" in text


def test_python_socket_addresses_read_as_ip_port() -> None:
    c = check("ttl", True, "62", "TTL 62 from ['10.77.1.10', 42248]")
    six = check("v6", True, "x", "from ('fd77:1::a', 5000, 0, 0) and ('10.77.2.3', 7)")
    text = _render(report.table([_result("ttl-and-traceroute", c, six)], verbose=True))
    assert "TTL 62 from 10.77.1.10:42248" in text
    assert "from [fd77:1::a]:5000 and 10.77.2.3:7" in text
    assert "'10.77.1.10'" not in text


def test_lists_that_are_not_addresses_are_left_alone() -> None:
    c = check("c", True, "a", "['lan2', 3] and ['10.77.1', 80] and datagrams [100, 200, 300]")
    text = _render(report.table([_result("x", c)]))
    assert "['lan2', 3] and ['10.77.1', 80] and datagrams [100, 200, 300]" in text


def test_hidden_rows_are_counted_with_the_way_to_show_them() -> None:
    passed = [check(f"p{i}", True, "a", "a") for i in range(4)]
    failed = check("f", False, "a", "b", hint="mend it")
    results = [_result("one", *passed), _result("two", passed[0], failed)]
    text = _render(report.table(results))
    # one: its first check stands for it (3 hidden); two: only the failure (1 hidden)
    assert "4 passing checks not shown: `hoplab run -v` shows every check" in text
    assert "p1" not in text and "p0" in text
    verbose = _render(report.table(results, verbose=True))
    assert "not shown" not in verbose
    assert all(f"p{i}" in verbose for i in range(4))


def test_nothing_hidden_says_nothing() -> None:
    text = _render(report.table([_result("one", check("f", False, "a", "b"))]))
    assert "not shown" not in text
