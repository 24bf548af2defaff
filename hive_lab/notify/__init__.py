"""Calling the user only when needed: one policy fed by transitions, channels through apprise."""
