"""The web face: app factory, routes, security, settings and the `backbeat` command."""
