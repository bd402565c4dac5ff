"""Disposable Debian test hosts: systemd-nspawn machines on overlayfs, each in its own
network namespace on a private bridge, reachable over SSH, with egress only to the
package mirror. Used by the tests, by Molecule and by ``acmefleet demo``. Needs root.
"""
