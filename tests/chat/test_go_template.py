"""The Go text/template interpreter behind Ollama's chat templates: each construct, Go's
trimming, truthiness and printing, compile-time refusals, and the render limits.

Expected texts are what Go's text/template writes for the same template and data (run
with ``missingkey=zero``, as Ollama runs its templates)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from power_core.chat.go_template.evaluator import render_source
from power_core.chat.go_template.parser import UnsupportedTemplate
from power_core.chat.sandbox import RENDER_TIME_LIMIT_S, TemplateError


def render(source: str, **data: Any) -> str:
    return render_source(source, data)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a  {{- 1 -}}  b", "a1b"),
        ("a \n\t {{- 1 }} b", "a1 b"),
        ("a {{ 1 -}} \n b", "a 1b"),
        ("{{-3}}", "-3"),  # no space after -: a negative number, not a trim marker
        ("a {{/* a comment */}} b", "a  b"),
        ("a {{- /* trimmed */ -}} b", "ab"),
        ("x{{/* multi\nline */}}y", "xy"),
    ],
)
def test_text_trimming_and_comments(source: str, expected: str) -> None:
    assert render(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ if .A }}a{{ else if .B }}b{{ else }}c{{ end }}", "b"),
        ("{{ if .C }}a{{ else if .D }}b{{ else }}c{{ end }}", "c"),
        ("{{ if .A }}a{{ end }}", ""),
        ("{{ with .S }}[{{ . }}]{{ end }}", "[s]"),
        ("{{ with .Empty }}[{{ . }}]{{ else }}none{{ end }}", "none"),
        ("{{ with .Empty }}1{{ else with .S }}{{ . }}{{ end }}", "s"),
        ("{{ range .L }}<{{ . }}>{{ end }}", "<x><y><z>"),
        ("{{ range $i, $e := .L }}{{ $i }}{{ $e }}{{ end }}", "0x1y2z"),
        ("{{ range $e := .L }}{{ $e }}{{ end }}", "xyz"),
        ("{{ range .None }}x{{ else }}empty{{ end }}", "empty"),
        ("{{ range $k, $v := .M }}{{ $k }}={{ $v }};{{ end }}", "a=1;b=2;"),  # keys sorted
        ("{{ range 3 }}{{ . }}{{ end }}", "012"),
        (
            "{{ range $i, $e := .L }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $e }}{{ end }}",
            "xz",
        ),
        ('{{ range .L }}{{ if eq . "y" }}{{ break }}{{ end }}{{ . }}{{ end }}', "x"),
    ],
)
def test_control_structures(source: str, expected: str) -> None:
    data = {"B": True, "S": "s", "Empty": "", "L": ["x", "y", "z"], "M": {"b": 2, "a": 1}}
    assert render(source, **data) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ $x := .S }}{{ $x }}", "s"),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
        ("{{ range .L }}{{ $.S }}{{ end }}", "sss"),
        ("{{ with .P }}{{ .Name }}{{ $.S }}{{ end }}", "ns"),
        ("{{ .P.Name }}/{{ $p := .P }}{{ $p.Name }}", "n/n"),
        ("{{ (.P).Name }}", "n"),
        ('{{ "double\\t" }}|{{ `raw\\t` }}', "double\t|raw\\t"),
        (
            "{{ 'a' }} {{ 0x1F }} {{ 1_000 }} {{ 017 }} {{ 1.5 }} {{ 2.0 }} {{ -3 }}",
            "97 31 1000 15 1.5 2 -3",
        ),
        ("{{ true }} {{ false }}", "true false"),
        ('{{ "a" | printf "%s-%s" "b" }}', "b-a"),
        ('{{ len .L | printf "%d items" }}', "3 items"),
        ("{{ print (len .L) (index .L 0) }}", "3x"),
    ],
)
def test_variables_fields_literals_and_pipes(source: str, expected: str) -> None:
    data = {"S": "s", "L": ["x", "y", "z"], "P": {"Name": "n"}}
    assert render(source, **data) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # and/or return the deciding argument and stop there
        ('{{ and 1 0 2 }}|{{ and 1 2 }}|{{ or 0 "" }}|{{ or 0 "z" 3 }}', "0|2||z"),
        ("{{ or .S (index .Nil 1) }}", "s"),  # the erroring index is never evaluated
        ("{{ and .Empty (index .Nil 1) }}", ""),
        ("{{ not 0 }} {{ not .S }}", "true false"),
        ('{{ eq 1 2 3 1 }} {{ eq .S "t" "s" }} {{ ne 1 2 }}', "true true true"),
        ('{{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }}', "true true true false"),
        ('{{ len "héllo" }} {{ len .L }} {{ len .M }}', "6 3 2"),  # Go counts bytes
        ('{{ index .L 1 }} {{ index .M "b" }} {{ index .M "zz" }}', "y 2 <no value>"),
        ('{{ slice .L 1 }} {{ slice .L 1 2 }} {{ slice "hello" 1 3 }}', "[y z] [y] el"),
        ('{{ print 1 2 "a" 3 "b" }}', "1 2a3b"),
        ('{{ println 1 "a" }}', "1 a\n"),
        ('{{ printf "%s=%d %v %q %t" "k" 7 .L "q\\"" true }}', 'k=7 [x y z] "q\\"" true'),
        ('{{ printf "%5.2f|%-4s|%04d|%x" 3.14159 "ab" 42 255 }}', " 3.14|ab  |0042|ff"),
        (
            '{{ printf "%d %s" }}|{{ printf "%d" "s" }}|{{ printf "x" 1 }}',
            "%!d(MISSING) %!s(MISSING)|%!d(string=s)|x%!(EXTRA int=1)",
        ),
        # "*" takes a width or precision from the operands: granite's templates count with
        # len (printf "a%*s" $i ""), having no arithmetic
        ('{{ printf "a%*s" 3 "" }}|{{ len (printf "a%*s" 2 "") }}', "a   |3"),
        ('{{ printf "%-*d|%.*f|%*s|" 4 7 2 3.14159 -3 "a" }}', "7   |3.14|a  |"),
        ('{{ printf "%*d" "x" 5 }}|{{ printf "%.*s" -1 "abc" }}', "%!(BADWIDTH)5|abc"),
        ("{{ json .M }} {{ json .S }} {{ json .L }}", '{"a":1,"b":2} "s" ["x","y","z"]'),
        ('{{ json "<a & b>" }}', '"\\u003ca \\u0026 b\\u003e"'),
        (
            '{{ html "<a href=\'x\'>" }} {{ urlquery "a b&c" }}',
            "&lt;a href=&#39;x&#39;&gt; a+b%26c",
        ),
    ],
)
def test_functions(source: str, expected: str) -> None:
    data = {"S": "s", "Empty": "", "L": ["x", "y", "z"], "M": {"b": 2, "a": 1}}
    assert render(source, **data) == expected


def test_dates() -> None:
    today = time.strftime("%Y-%m-%d")
    assert render('{{ currentDate }} {{ currentDate "2006" }}') == f"{today} {today}"
    assert len(render("{{ yesterdayDate }}")) == 10


@pytest.mark.parametrize(
    ("value", "truth"),
    [
        (False, False),
        (0, False),
        (0.0, False),
        ("", False),
        ([], False),
        ({}, False),
        (None, False),
        (True, True),
        (-1, True),
        (0.5, True),
        ("0", True),
        ([0], True),
        ({"a": 0}, True),
    ],
)
def test_truthiness(value: Any, truth: bool) -> None:
    assert render("{{ if .V }}T{{ else }}F{{ end }}", V=value) == ("T" if truth else "F")


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        ('raw <text> & "quotes"', 'raw <text> & "quotes"'),
        (42, "42"),
        (1.0, "1"),
        (0.25, "0.25"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1e-5, "1e-05"),
        (True, "true"),
        (["a", 1, None], "[a 1 <nil>]"),
        ({"b": [1], "a": "x"}, "map[a:x b:[1]]"),
    ],
)
def test_printing(value: Any, printed: str) -> None:
    assert render("{{ .V }}", V=value) == printed


def test_missing_values_print_as_go_prints_them() -> None:
    # a missing key of a map[string]any is a nil interface: no value when printed,
    # <nil> when passed to a function, and nothing to read a field of
    assert render("{{ .Missing }}|{{ print .Missing }}|{{ $x := .Missing }}{{ $x.Field }}") == (
        "<no value>|<nil>|<no value>"
    )
    with pytest.raises(TemplateError, match=r"nil pointer evaluating interface \{\}\.Field"):
        render("{{ .Missing.Field }}")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ if .A }}x", "unexpected EOF"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ .A", "unclosed action"),
        ("{{ $x }}", "undefined variable '\\$x'"),
        ("{{ nosuch 1 }}", "function 'nosuch' not defined"),
        ("{{ break }}", "outside {{range}}"),
        ('{{ "unterminated }}', "unterminated quoted string"),
        ("{{ 1 | 2 }}", "non executable command in pipeline stage 2"),
        ("{{ $x, $y := .L }}", "too many declarations"),
        ("{{ .A.B.C$ }}", "bad character"),
        ("{{ /* not a comment */ }}", "unrecognized character"),
        ("{{/* unclosed }}", "unclosed comment"),
        ("{{ if }}{{ end }}", "missing value for if"),
        ("{{ 1.2.3 }}", "bad number syntax"),
        ("{{ 1e400 }}", "illegal number syntax"),  # past float64, as Go refuses it
    ],
)
def test_syntax_errors_fail_at_compile(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(source)


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ('{{ define "x" }}y{{ end }}', "{{define}}"),
        ('{{ template "x" }}', "{{template}}"),
        ('{{ block "x" . }}y{{ end }}', "{{block}}"),
        ("{{ call .F }}", "'call'"),
        ('{{ js "x" }}', "'js'"),
    ],
)
def test_what_is_not_run_is_refused_at_compile_naming_it(source: str, what: str) -> None:
    with pytest.raises(UnsupportedTemplate) as caught:
        render(source)
    assert what in caught.value.message
    assert "A3S Power does not run" in caught.value.message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ .S.Field }}", "can't evaluate field Field in type string"),
        ('{{ eq 1 "a" }}', "incompatible types for comparison"),
        ("{{ lt true false }}", "invalid type for comparison"),
        ("{{ index .L 5 }}", "index out of range: 5"),
        ("{{ len 3 }}", "len of type int"),
        ("{{ not 1 2 }}", "wrong number of args for not: want 1 got 2"),
        ("{{ range .S }}{{ end }}", "range can't iterate over s"),
        ("{{ nil }}", "nil is not a command"),
        ('{{ .S "arg" }}', "can't give argument to non-function"),
    ],
)
def test_execution_errors_are_template_errors(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(source, S="s", L=[1])


def test_output_is_bounded() -> None:
    # each range multiplies the output; the limit stops it long before memory runs out
    bomb = "{{ range 1000 }}{{ range 1000 }}{{ range 1000 }}xxxxxxxx{{ end }}{{ end }}{{ end }}"
    with pytest.raises(TemplateError, match="exceeds the limit of 4096 characters"):
        render_source(bomb, {}, max_chars=4096)


def test_time_is_bounded() -> None:
    # output-free loops run until the deadline, then fail
    spin = "{{ range 100000 }}{{ range 100000 }}{{ end }}{{ end }}"
    started = time.monotonic()
    with pytest.raises(TemplateError, match="took longer than"):
        render(spin)
    assert time.monotonic() - started < RENDER_TIME_LIMIT_S + 2


def test_huge_values_and_ranges_are_refused() -> None:
    with pytest.raises(TemplateError, match="range of more than"):
        render("{{ range 1000000000 }}{{ end }}")
    # widths are bounded on their own: many padded strings held in variables would
    # otherwise fill memory without ever reaching the output
    for wide in ('{{ printf "%999999s" "x" }}', '{{ printf "%*s" 5000 "x" }}'):
        with pytest.raises(TemplateError, match="the most allowed is 4096"):
            render_source(wide, {}, max_chars=1000)
    assert len(render('{{ printf "%4096s" "x" }}')) == 4096


def test_nesting_is_bounded() -> None:
    deep = "{{ " + "(" * 200 + "1" + ")" * 200 + " }}"
    with pytest.raises(TemplateError, match="nests deeper than"):
        render(deep)
