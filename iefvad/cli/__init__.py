"""Command lines: argument parsers, option resolution and the entry points of the scripts, behind
one error boundary."""
