"""Typer's and Click's own texts of the ``zi`` command line in German: help panels, the usage line, errors.

What belongs here: the command classes ``zi`` is built with (:class:`GermanGroup`, :class:`GermanCommand`)
and the German wording of what Typer and Click print themselves. The commands' own texts are German where
they are written (``cli.py``).

Why: the data team and the controllers read German everywhere else (the build summary, the reports, the
rejection messages); a mistyped option answered with "No such option" in an "Error" box under "Usage:" was
the one English screen left. Typer offers no setting for these texts: the help panels' titles are constants of
``typer.rich_utils`` that it reads when it prints, the value types next to the options come from its parameter
classes, the usage prefix is an argument of the formatter, and error messages are composed in English by
Click's exceptions. Errors are translated from that English text by the
patterns below; a message without a pattern is shown as Click wrote it, not hidden.
"""

from __future__ import annotations

import re

from typer._click.exceptions import ClickException, UsageError
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.exceptions import Abort

#: Read by Typer each time it prints help or an error (``typer.rich_utils``).
_RICH_TEXTS = {
    "ARGUMENTS_PANEL_TITLE": "Argumente",
    "OPTIONS_PANEL_TITLE": "Optionen",
    "COMMANDS_PANEL_TITLE": "Befehle",
    "ERRORS_PANEL_TITLE": "Fehler",
    "ABORTED_TEXT": "Abgebrochen.",
    "RICH_HELP": "Hilfe: [blue]{command_path} {help_option}[/]",
    "DEFAULT_STRING": "[Standard: {}]",
    "ENVVAR_STRING": "[Umgebungsvariable: {}]",
    "REQUIRED_LONG_STRING": "[erforderlich]",
    "DEPRECATED_STRING": "(veraltet) ",
}


def _german_rich_texts() -> None:
    """Typer imports its rich layer only to print help or an error (~60 ms, not paid by every command): the
    German texts are set just before it prints."""
    from typer import rich_utils

    for name, text in _RICH_TEXTS.items():
        setattr(rich_utils, name, text)


#: The value types the help shows next to each option; a flag takes no value and shows none.
_TYPE_LABELS = {
    "<str>": "<Text>",
    "<path>": "<Pfad>",
    "<float>": "<Zahl>",
    "<int>": "<ganze Zahl>",
    "<bool>": "<ja|nein>",
}


def _in_german_types(display_type_rich):
    def shown(self, ctx):
        if getattr(self, "is_flag", False):
            return None
        label = display_type_rich(self, ctx)
        return _TYPE_LABELS.get(label, label)

    return shown


for _param_class in (TyperOption, TyperArgument):
    _param_class.display_type_rich = _in_german_types(_param_class.display_type_rich)

USAGE_PREFIX = "Aufruf: "
#: For ``typer.Typer(...)`` and ``app.command(...)``, which take them as settings (``-h`` as well as ``--help``).
METAVARS = {"options_metavar": "[OPTIONEN]", "context_settings": {"help_option_names": ["--help", "-h"]}}
GROUP_METAVARS = {**METAVARS, "subcommand_metavar": "BEFEHL [ARGUMENTE]..."}
HELP_TEXT = "Diese Hilfe zeigen und beenden."
COMPLETION_HELP = {
    "install_completion": "Die Befehlsvervollständigung für die aktuelle Shell einrichten.",
    "show_completion": "Die Befehlsvervollständigung für die aktuelle Shell anzeigen (zum Einrichten von Hand).",
}

#: What a value is not, in Click's "'x' is not a valid <type>." messages.
_VALUE_KINDS = {
    "integer": "keine ganze Zahl",
    "float": "keine Zahl",
    "boolean": "weder ja noch nein (true/false)",
    "integer range": "keine ganze Zahl im erlaubten Bereich",
    "float range": "keine Zahl im erlaubten Bereich",
    "uuid": "keine UUID",
}
_PARAMETER_KINDS = {"option": "Option", "argument": "Argument", "parameter": "Angabe"}


#: What was expected, in the messages Typer takes from pydantic ("Input should be a valid number, ...").
_EXPECTED_KINDS = {"integer": "eine ganze Zahl", "number": "eine Zahl", "boolean": "ja oder nein (true/false)"}


def _value_message(text: str) -> str:
    """The reason a value was refused ("'abc' is not a valid integer."), in German."""
    if m := re.fullmatch(r"Input should be (greater|less) than( or equal to)? (\S+)", text, re.S):
        bound = {("greater", True): "ab", ("greater", False): "über", ("less", True): "bis", ("less", False): "unter"}
        return f"erwartet wird ein Wert {bound[m[1], bool(m[2])]} {m[3]}."
    if m := re.fullmatch(r"Input should be a valid (\w+)\b.*", text, re.S):
        kind = _EXPECTED_KINDS.get(m[1].lower())
        return f"erwartet wird {kind}." if kind else text
    if m := re.fullmatch(r"(?:Value )?'(.*)' is not a valid (.+?)\.?", text, re.S):
        kind = _VALUE_KINDS.get(m[2].lower())
        return f"„{m[1]}“ ist {kind}." if kind else text
    if m := re.fullmatch(r"'(.*)' is not one of (.+?)\.?", text, re.S):
        return f"„{m[1]}“ ist keiner der Werte {m[2]}."
    if m := re.fullmatch(r"(File|Directory|Path) '(.*)' does not exist\.?", text, re.S):
        what = {"File": "Datei", "Directory": "Ordner", "Path": "Pfad"}[m[1]]
        return f"{what} „{m[2]}“ existiert nicht."
    return text


#: Click's messages that translate word for word (pattern, German with the pattern's groups).
_PLAIN_ERRORS = (
    (r"No such command '(.*)'\.?", r"Unbekannter Befehl: \1."),
    (r"Missing command\.", "Befehl fehlt."),
    (r"Got unexpected extra argument(?:s|\(s\))? \((.*)\)", r"Unerwartete weitere Angaben: \1"),
    (r"Option '(.+)' requires an argument\.", r"Option \1 braucht einen Wert."),
    (r"Option '(.+)' requires (\d+) arguments\.", r"Option \1 braucht \2 Werte."),
    (r"Option '(.+)' does not take a value\.", r"Option \1 nimmt keinen Wert."),
)


def german_error(text: str) -> str:
    """Click's English error message in German; unchanged when no pattern knows it."""
    text = text.strip()
    suggestion = ""
    if m := re.fullmatch(r"(.*?)\.? Did you mean (.+)\?", text, re.S):
        text, suggestion = m[1], f" Gemeint: {m[2]}?"
    if m := re.fullmatch(r"No such option: (\S+)(?: \(Possible options: (.+)\))?", text, re.S):
        possible = f" (ähnliche Optionen: {m[2]})" if m[2] else ""
        return f"Unbekannte Option: {m[1]}{possible}.{suggestion}"
    if m := re.fullmatch(r"Missing (option|argument|parameter)(?: (.+?))?\.(?: (.*))?", text, re.S):
        named = f" {m[2]}" if m[2] else ""
        return f"{_PARAMETER_KINDS[m[1]]}{named} fehlt." + (f" {m[3]}" if m[3] else "")
    if m := re.fullmatch(r"Invalid value(?: for (.+?))?: (.*)", text, re.S):
        return f"Ungültiger Wert{f' für {m[1]}' if m[1] else ''}: {_value_message(m[2])}"
    for pattern, german in _PLAIN_ERRORS:
        if m := re.fullmatch(pattern, text, re.S):
            return m.expand(german) + suggestion
    return text + suggestion


def _in_german(exc: UsageError) -> UsageError:
    """The same error (exit code, usage line) with its message in German."""
    _german_rich_texts()
    german = UsageError(german_error(exc.format_message()), exc.ctx)
    german.exit_code = exc.exit_code
    return german


class _GermanTexts:
    """What the group and every command share: the usage line, ``--help`` and errors in German."""

    def format_help(self, ctx, formatter) -> None:
        _german_rich_texts()
        super().format_help(ctx, formatter)

    def format_usage(self, ctx, formatter) -> None:
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)), prefix=USAGE_PREFIX)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.help = HELP_TEXT
        return option

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            raise _in_german(exc) from None

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except UsageError as exc:
            if exc.ctx is None:  # Click's parser raises some errors without it: no usage line, no help hint
                exc.ctx = ctx
            raise


class GermanGroup(_GermanTexts, TyperGroup):
    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if param.name in COMPLETION_HELP:
                param.help = COMPLETION_HELP[param.name]
        return params

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (ClickException, Abort, KeyboardInterrupt, EOFError):  # Typer prints these with its rich layer
            _german_rich_texts()
            raise

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:
            raise _in_german(exc) from None


class GermanCommand(_GermanTexts, TyperCommand):
    pass
