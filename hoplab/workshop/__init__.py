"""A workshop room: one lab per participant on one engine."""
