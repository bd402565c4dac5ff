"""The web console: server-rendered pages under ``/console/`` over the console's service layer."""
