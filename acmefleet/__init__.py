"""acmefleet: an ACME certificate service with External Account Binding."""

__version__ = "0.1.0"
