"""Exceptions raised by the embedded CA."""

from __future__ import annotations


class CsrError(ValueError):
    """A CSR that cannot be honoured; the message is the ACME ``badCSR`` detail."""


class CaError(RuntimeError):
    """A CA misconfiguration or a request the CA refuses to sign."""
