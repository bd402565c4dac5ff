"""Errors an administrator can fix; the message says how."""


class ConsoleError(ValueError):
    pass


class NotFound(ConsoleError):
    pass
