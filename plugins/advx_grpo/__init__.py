"""advx built-in plugin (being written)."""
