"""Ollama's chat templates: Go ``text/template`` source, run as Ollama runs it.

:mod:`.lexer` and :mod:`.parser` compile a template (refusing, with
:class:`~power_core.chat.sandbox.TemplateError`, what Go refuses and what this interpreter
does not run), :mod:`.evaluator` executes it over Go-like :mod:`.values` with the
:mod:`.functions` Go and Ollama define, and :mod:`.ollama_template` renders a conversation
through it with the data :mod:`.ollama_data` builds, as Ollama's ``template`` package does.
"""
