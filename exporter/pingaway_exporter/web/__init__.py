"""The exporter's own port: transport, routes, web-config, the status page."""
