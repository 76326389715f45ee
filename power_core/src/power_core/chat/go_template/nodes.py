"""The parse tree of a Go template: the shapes Go's ``text/template/parse`` builds, for the
part of the language this interpreter runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias


@dataclass
class Text:
    text: str


@dataclass
class Field:
    """``.A.B``: fields (or map keys) looked up from dot."""

    names: list[str]


@dataclass
class Variable:
    """``$x`` or ``$x.A.B`` (``$`` is the data the template was run with)."""

    name: str
    fields: list[str] = field(default_factory=list)


@dataclass
class Chain:
    """``(pipeline).A.B``: fields looked up from the value of another operand."""

    operand: Operand
    fields: list[str]


@dataclass
class Dot:
    pass


@dataclass
class Nil:
    pass


@dataclass
class Literal:
    """A bool, string or number constant, already as its Python value."""

    value: object


@dataclass
class Identifier:
    """A function's name, as the first word of a command or an argument."""

    name: str


@dataclass
class Command:
    """Operands separated by spaces: a function and its arguments, or one value."""

    args: list[Operand]


@dataclass
class Pipeline:
    """Commands joined by ``|``, optionally declaring (``:=``) or assigning (``=``)
    variables; each command after the first gets the value before it as its last argument."""

    commands: list[Command]
    variables: list[str] = field(default_factory=list)
    is_assign: bool = False
    line: int = 0


@dataclass
class Action:
    """``{{ pipeline }}``: its value is printed unless it declares a variable."""

    pipe: Pipeline


@dataclass
class Branch:
    """``if``, ``with`` or ``range``: a pipeline, the list it runs, and its ``else``."""

    kind: str
    pipe: Pipeline
    body: ListNode
    else_body: ListNode | None = None


@dataclass
class LoopControl:
    """``{{ break }}`` or ``{{ continue }}`` inside a ``range``."""

    kind: str


@dataclass
class ListNode:
    nodes: list[Node] = field(default_factory=list)


Operand: TypeAlias = "Field | Variable | Chain | Dot | Nil | Literal | Identifier | Pipeline"
Node: TypeAlias = "Text | Action | Branch | LoopControl | ListNode"
