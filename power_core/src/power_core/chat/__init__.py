"""The model-agnostic chat layer between the API surfaces and the engine.

:mod:`~power_core.chat.template` renders conversations into prompts (Ollama's Go templates
through :mod:`~power_core.chat.go_template`),
:mod:`~power_core.chat.output` turns generated text back into text, reasoning and tool-call
events, :mod:`~power_core.chat.tools` builds the JSON Schema that forces a tool call, and
:mod:`~power_core.chat.messages` holds the conversation edits the API surfaces share, and
:mod:`~power_core.chat.template_syntax` reads what a template's text says about itself. Import the
submodule you need; this package imports none of them, so it stays cheap to import.
"""
