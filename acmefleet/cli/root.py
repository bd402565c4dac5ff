"""The ``acmefleet`` command group: every error is one ``error: ...`` line on stderr.

Exit status 1 for errors, 2 for usage errors; no traceback (``ACMEFLEET_DEBUG=1`` shows one for
an unexpected error) and never a registered secret.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

import click

from acmefleet import __version__
from acmefleet.cli.admin import admin
from acmefleet.cli.common import fail, scrub
from acmefleet.cli.server import demo, server
from acmefleet.cli.validator import validator
from acmefleet.fleet.cli import renew, rollout, status
from acmefleet.lab.__main__ import lab


class OneLineErrors(click.Group):
    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            if isinstance(exc, click.NoSuchOption) and not exc.option_name.startswith("--"):
                # Account and certificate ids may start with '-'.
                given = kwargs.get("args") or sys.argv[1:]
                word = next((a for a in given if a.startswith(exc.option_name)), "-ID")
                hint = f" (an id starting with '-' goes after '--': ... -- {word})"
            fail(exc.format_message().rstrip(".") + hint, exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            fail("aborted", 130)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                fail(str(exc))
            # The reader went away (``| head``): stop quietly, without a second error at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except Exception as exc:
            if os.environ.get("ACMEFLEET_DEBUG"):
                raise
            fail(
                f"unexpected {type(exc).__name__}: {scrub(str(exc))} "
                "(run with ACMEFLEET_DEBUG=1 for a traceback)"
            )
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acmefleet")
def main() -> None:
    """acmefleet: ACME with External Account Binding, and certificate roll-outs with Ansible."""


main.add_command(server)
main.add_command(admin)
main.add_command(demo)
main.add_command(rollout)
main.add_command(status)
main.add_command(renew)
main.add_command(lab)
main.add_command(validator)
