"""``fmt.Sprintf`` for templates' ``printf``: the verbs chat templates use (``%s``, ``%d``,
``%v``, ``%q``, ``%t``, ``%f``/``%e``/``%g``, ``%x``, ``%c``, ``%T``, ``%%``) with flags,
width and precision (``*`` takes either from the next operand), and Go's
``%!verb(type=value)`` text for a verb that does not fit its operand, ``%!verb(MISSING)``,
``%!(BADWIDTH)``, ``%!(BADPREC)`` and ``%!(EXTRA ...)``."""

from __future__ import annotations

import re
from typing import Any, NoReturn

from power_core.chat.go_template.values import NO_VALUE, go_float, go_text, type_name
from power_core.chat.render_budget import TemplateError

_DIRECTIVE = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\*|\d*))?(.)?", re.DOTALL)
#: the widest field or longest precision a template may ask for: enough for any prompt's
#: padding (and for counting with ``len (printf "%*s" $n "")``, as granite's templates do),
#: small enough that a template holding many such strings cannot fill memory
MAX_WIDTH = 4096
_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
}


def go_quote(text: str, quote: str = '"') -> str:
    """``strconv.Quote``: Go's double-quoted literal of ``text``."""
    out = [quote]
    for char in text:
        if char == quote:
            out.append("\\" + char)
        elif char in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append(quote)
    return "".join(out)


def _bad(verb: str, arg: Any) -> str:
    if arg is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(arg)}={go_text(arg)})"


def _number(verb: str, arg: int, flags: str, precision: int | None) -> str:
    sign = "-" if arg < 0 else "+" if "+" in flags else " " if " " in flags else ""
    magnitude = abs(arg)
    if verb == "c":
        return chr(arg) if 0 <= arg <= 0x10FFFF else "\ufffd"
    if verb == "q":
        return go_quote(chr(arg) if 0 <= arg <= 0x10FFFF else "\ufffd", "'")
    if verb == "U":
        return f"U+{arg:04X}"
    base = {"d": "d", "v": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb]
    digits = format(magnitude, base)
    if precision is not None:
        digits = digits.zfill(precision)
    if "#" in flags and verb in "xXo":
        digits = {"x": "0x", "X": "0X", "o": "0"}[verb] + digits
    return sign + digits


def _float(verb: str, arg: float, flags: str, precision: int | None) -> str:
    if verb in ("v", "g") and precision is None:
        text = go_float(arg)
    else:
        spec = "g" if verb == "v" else verb
        text = format(arg, f".{6 if precision is None else precision}{spec}")
    if "+" in flags and not text.startswith("-"):
        text = "+" + text
    return text


def _format_one(verb: str, arg: Any, flags: str, precision: int | None) -> str | None:
    """One operand under one verb, or ``None`` when the verb does not fit it."""
    if verb == "T":
        return type_name(arg)
    if verb == "v" and (isinstance(arg, bool) or not isinstance(arg, int | float)):
        return go_text(arg)
    if verb == "t":
        return ("true" if arg else "false") if isinstance(arg, bool) else None
    if isinstance(arg, bool):
        return None
    if isinstance(arg, int):
        return _number(verb, arg, flags, precision) if verb in "vdxXobcqU" else None
    if isinstance(arg, float):
        return _float(verb, arg, flags, precision) if verb in "veEfFgG" else None
    if arg is None:
        return None
    text = go_text(arg)
    if isinstance(arg, str) and verb in "xX":
        encoded = arg.encode("utf-8", "surrogatepass").hex()
        return encoded.upper() if verb == "X" else encoded
    if verb == "q" and isinstance(arg, str):
        return go_quote(arg)
    if verb == "s":
        return text if precision is None else text[:precision]
    return None


def _pad(text: str, flags: str, width: int | None, numeric: bool) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    if "0" in flags and numeric:
        sign = text[0] if text[:1] in ("-", "+", " ") else ""
        return sign + text[len(sign) :].rjust(width - len(sign), "0")
    return text.rjust(width)


def _int_operand(args: tuple[Any, ...], used: int) -> tuple[int | None, int]:
    """The operand a ``*`` takes (``None`` when missing or not an integer) and the next
    operand's place."""
    if used >= len(args):
        return None, used
    arg = args[used]
    return (arg if isinstance(arg, int) and not isinstance(arg, bool) else None), used + 1


def _bounded(digits: str) -> int:
    """A width or precision written in the format, refused before it is even converted
    when it has more digits than any allowed one."""
    if len(digits) > len(str(MAX_WIDTH)):
        _refuse(digits)
    return int(digits)


def _refuse(number: str) -> NoReturn:
    raise TemplateError(
        f"printf asks for a width or precision of {number}; the most allowed is {MAX_WIDTH}"
    )


def go_sprintf(fmt: str, args: tuple[Any, ...]) -> str:
    """``fmt.Sprintf(fmt, args...)``."""
    out: list[str] = []
    used = 0
    pos = 0
    while True:
        at = fmt.find("%", pos)
        if at < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:at])
        match = _DIRECTIVE.match(fmt, at)
        assert match is not None
        flags, width_text, precision_text, verb = match.groups()
        pos = match.end()
        if verb is None:
            out.append("%!(NOVERB)")
            break
        if verb == "%":
            out.append("%")
            continue
        width: int | None = None
        if width_text == "*":
            width, used = _int_operand(args, used)
            if width is None:
                out.append("%!(BADWIDTH)")
            elif width < 0:  # Go: a negative width pads on the right
                flags, width = flags + "-", -width
        elif width_text:
            width = _bounded(width_text)
        precision: int | None = None
        if precision_text == "*":
            precision, used = _int_operand(args, used)
            if precision is None:
                out.append("%!(BADPREC)")
            elif precision < 0:  # Go: a negative precision is no precision
                precision = None
        elif precision_text is not None:
            precision = _bounded(precision_text or "0")
        for number in (width, precision):
            if number is not None and number > MAX_WIDTH:
                _refuse(str(number))
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[used]
        used += 1
        text = _format_one(verb, arg, flags, precision)
        if text is None:
            out.append(_bad(verb, arg))
            continue
        numeric = isinstance(arg, int | float) and not isinstance(arg, bool)
        out.append(_pad(text, flags, width, numeric))
    if used < len(args):
        extra = ", ".join(
            "<nil>" if a is None or a is NO_VALUE else f"{type_name(a)}={go_text(a)}"
            for a in args[used:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
