"""What the operator wrote: command-line flags, the config file, secrets, opening hours, reloading."""
