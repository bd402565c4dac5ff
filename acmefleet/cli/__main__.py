"""``python -m acmefleet.cli``."""

from acmefleet.cli.root import main

main()
