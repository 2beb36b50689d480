"""Error metrics and memory/time accounting."""
