"""The front doors: the command line, the HTTP API and the dashboard helpers."""
