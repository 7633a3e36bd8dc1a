"""Security: who is calling, what they may do and how much, and the record of it; the guard applies it to each call."""
