"""Errors an administrator can fix; the message says how."""


class ConsoleError(ValueError):
    pass


class NotFound(ConsoleError):
    pass


class Conflict(ConsoleError):
    """The request contradicts the current state (exists already, already revoked...)."""
