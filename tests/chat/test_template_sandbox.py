"""Hostile chat templates are refused or stopped, and the process goes on rendering."""

from __future__ import annotations

import threading

import pytest

from power_core.chat import sandbox
from power_core.chat.template import CHATML_TEMPLATE, ChatTemplate, TemplateError
from power_core.types import ChatMessage

HELLO = [ChatMessage("user", "hello")]
EXPECTED_HELLO = "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"

ESCAPES = {
    "str mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "messages class": "{{ messages.__class__ }}",
    "cycler globals": "{{ cycler.__init__.__globals__ }}",
    "format escape": "{{ '{0.__class__}'.format(messages) }}",
    "mutation": "{{ messages.append(1) }}{{ messages.clear() }}",
    "dict mutation": "{% set d = {} %}{{ d.update({'a': 1}) }}",
}

HUGE_OUTPUT = {
    "10^9 by loops": "{% for i in range(100000) %}{% for j in range(100000) %}"
    "{{ 'xxxxxxxxxx' }}{% endfor %}{% endfor %}",
    "10^9 by multiplication": "{{ 'x' * 1000000000 }}",
    "10^9 by power": "{{ 'x' * 10 ** 9 }}",
    "list multiplication": "{{ ([0] * 1000000000) | length }}",
    "big integer": "{{ 2 ** 100000000000 }}",
    "center filter": "{{ 'x' | center(1000000000) }}",
    "str method": "{{ 'x'.rjust(1000000000) }}",
    "printf width": "{{ '%0999999999d' % 1 }}",
    "format filter": "{{ '%999999999s' | format('x') }}",
    "str.format width": "{{ '{:>999999999}'.format('x') }}",
    "doubling concat": "{% set s = 'x' * 600000 %}{% set s = s ~ s %}{{ s | length }}",
    "replace blow-up": "{{ ('x' * 1000000).replace('', 'yyyy') | length }}",
    "slice filter": "{{ [1] | slice(1000000000) | list | length }}",
    "huge range": "{{ range(1000000000) | length }}",
}

ENDLESS = {
    "nested range loops": "{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% endfor %}{% endfor %}",
    "nested list loops": "{% set l = range(1000) | list %}{% for a in l %}{% for b in l %}"
    "{% for c in l %}{% endfor %}{% endfor %}{% endfor %}",
    "captured output": "{% set x %}{% for i in range(100000) %}{% for j in range(100000) %}"
    "x{% endfor %}{% endfor %}{% endset %}{{ x | length }}",
    "macro loops": "{% macro m() %}{% for i in range(100000) %}{{ caller() }}{% endfor %}"
    "{% endmacro %}{% call m() %}{% call m() %}{% endcall %}{% endcall %}",
}

RECURSION = {
    "recursive macro": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "mutual macros": "{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}"
    "{{ a() }}",
    "recursive loop": "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
}


@pytest.fixture
def short_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Endless templates are stopped by the deadline; a short one keeps the suite quick."""
    monkeypatch.setattr(sandbox, "RENDER_TIME_LIMIT_S", 0.3)


def assert_still_renders() -> None:
    assert ChatTemplate(CHATML_TEMPLATE).render(HELLO) == EXPECTED_HELLO


@pytest.mark.parametrize("source", ESCAPES.values(), ids=ESCAPES.keys())
def test_sandbox_escapes_are_refused(source: str) -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        ChatTemplate(source).render(HELLO)
    assert_still_renders()


@pytest.mark.parametrize("source", HUGE_OUTPUT.values(), ids=HUGE_OUTPUT.keys())
def test_huge_output_is_refused(source: str) -> None:
    with pytest.raises(TemplateError, match=r"limit|range"):
        ChatTemplate(source).render(HELLO)
    assert_still_renders()


@pytest.mark.usefixtures("short_time_limit")
@pytest.mark.parametrize("source", ENDLESS.values(), ids=ENDLESS.keys())
def test_endless_templates_are_stopped_by_the_deadline(source: str) -> None:
    with pytest.raises(TemplateError, match=r"took longer than 0\.3 s"):
        ChatTemplate(source).render(HELLO)
    assert_still_renders()


def test_default_deadline_stops_nested_loops() -> None:
    with pytest.raises(TemplateError, match=r"took longer than 2 s"):
        ChatTemplate(ENDLESS["nested range loops"]).render(HELLO)
    assert_still_renders()


@pytest.mark.parametrize("source", RECURSION.values(), ids=RECURSION.keys())
def test_deep_recursion_is_caught(source: str) -> None:
    with pytest.raises(TemplateError, match="deeper than 64"):
        ChatTemplate(source).render(HELLO)
    assert_still_renders()


def test_deeply_nested_source_is_refused_at_compile_time() -> None:
    source = "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"
    with pytest.raises(TemplateError, match="nested too deeply"):
        ChatTemplate(source)
    assert_still_renders()


def test_output_limit_grows_with_the_conversation() -> None:
    # 3 MiB of user text is more than the base limit but a legitimate prompt
    big = "y" * (3 << 20)
    rendered = ChatTemplate(CHATML_TEMPLATE).render([ChatMessage("user", big)])
    assert len(rendered) == len(big) + len(EXPECTED_HELLO) - len("hello")


def test_legitimate_loops_macros_and_ranges_still_work() -> None:
    source = (
        "{% macro line(m) %}{{ m.role }}:{{ m.content }}{% endmacro %}"
        "{% for m in messages %}{{ line(m) }}{% if not loop.last %},{% endif %}{% endfor %}"
        "|{% for i in range(3) | reverse %}{{ i }}{% endfor %}"
        "|{{ 'ab' * 2 }}|{{ '%-4s|' % 'x' }}{{ '{:>3}'.format(7) }}|{{ 'x' | center(5) }}|"
        "{% for x in [[1, [2]], [3]] recursive %}{% if x is iterable %}{{ loop(x) }}"
        "{% else %}{{ x }}{% endif %}{% endfor %}"
    )
    rendered = ChatTemplate(source).render(
        [ChatMessage("user", "a"), ChatMessage("assistant", "b")]
    )
    assert rendered == "user:a,assistant:b|210|abab|x   |  7|  x  |123"


def test_a_hostile_render_in_one_thread_does_not_hold_up_another() -> None:
    errors: list[BaseException] = []

    def hostile() -> None:
        try:
            ChatTemplate(ENDLESS["nested range loops"]).render(HELLO)
        except TemplateError as exc:
            errors.append(exc)

    thread = threading.Thread(target=hostile)
    thread.start()
    try:
        # renders in this thread have their own budget while the other one spins
        for _ in range(20):
            assert_still_renders()
    finally:
        thread.join()
    assert len(errors) == 1
