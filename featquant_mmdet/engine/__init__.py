"""Runner-side pieces: command-line config handling, hooks."""
