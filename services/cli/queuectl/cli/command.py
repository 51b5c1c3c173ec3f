"""How every ``queuectl`` subcommand parses and describes itself.

Two departures from Typer's defaults, for every command at once:

* A negative number is a value, never an option: ``config set max-retries -1``
  reaches the config check ("value must be >= 0") instead of Click's "No such
  option: -1". argparse does the same as long as no option looks like a number,
  and none of ours does.
* Help shows the metavars we chose (``ID``, ``KEY VALUE``), not Python types
  (``ID <str>``, ``{ID}``, ``<list[str]>``).

And one duty: ``invoke`` ends start-up, turning the garbage collector back on that
``main()`` turned off (``queuectl.cli.main``).
"""

from __future__ import annotations

import gc
import re
from typing import Any

from typer import _click
from typer._click.parser import _OptionParser, _ParsingState
from typer.core import TyperCommand

# -1, -0.5, -.5, -1e3, and durations such as -5s: a dash followed by a digit.
NEGATIVE_NUMBER = re.compile(r"-\.?\d")


class _ValueParser(_OptionParser):
    """Click's parser, except that a word like ``-1`` is a value (see the module docstring)."""

    def _process_opts(self, arg: str, state: _ParsingState) -> None:
        if NEGATIVE_NUMBER.match(arg) and not any(NEGATIVE_NUMBER.match(opt)
                                                  for opt in self._short_opt):
            state.largs.append(arg)
            return
        super()._process_opts(arg, state)


def argument_name(param: _click.Parameter) -> str:
    """``ID``, ``ID...`` or ``KEY``: the metavar, marked when it takes several words."""
    name = param.metavar or (param.name or "").upper()
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name


def start_up_done() -> None:
    """Turn the garbage collector back on if ``main()`` turned it off for start-up.

    What start-up loaded is frozen first (moved out of the collector's sight): it lives
    until exit, and a long command (``status --watch``, ``worker start``) would otherwise
    walk it on every full collection. Run in-process (tests), the collector was never off
    and nothing changes.
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


class Command(TyperCommand):
    """Every leaf command of ``queuectl``: negative numbers as values, plain help."""

    def invoke(self, ctx: _click.Context) -> Any:
        """Run the command, its code loaded: start-up is over (see start_up_done)."""
        start_up_done()
        return super().invoke(ctx)

    def make_parser(self, ctx: _click.Context) -> _OptionParser:
        """Click's parser with negative numbers taken as values."""
        parser = _ValueParser(ctx)
        for param in self.get_params(ctx):
            param.add_to_parser(parser, ctx)
        return parser

    def collect_usage_pieces(self, ctx: _click.Context) -> list[str]:
        """``[OPTIONS] KEY VALUE``: required arguments bare, optional ones in brackets."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """The Arguments and Options sections, arguments named by their metavar alone."""
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((argument_name(param), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
