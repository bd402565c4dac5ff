"""The ``acmefleet`` command line: a thin layer over the server, the console and its API.

``acmefleet.cli:main`` is the console script. Remote admin commands import neither the
database nor the CA, so they start quickly.
"""

from acmefleet.cli.root import main

__all__ = ["main"]
