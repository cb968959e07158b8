"""Records to metric families, and the exposition text."""
