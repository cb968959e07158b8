"""What the operator wrote: command-line flags, the config file, secrets, opening hours, reloading.

The other layers and the wiring import only the modules named in ``__all__``; the rest are this package's own
(the schemas, their error translation, the YAML loader, the file reader, the TLS names and the opening-hours
checks). ``tools/check_imports.py`` holds every import to it.
"""

__all__ = ["errors", "file", "flags", "redact", "reload", "schedule", "secret", "targetfiles", "values", "webconfig"]
