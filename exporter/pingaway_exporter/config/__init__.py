"""What the operator wrote: command-line flags, the config file, opening hours, reloading."""
