"""Small network helpers every layer may use, importing nothing else of vinom.

Token buckets (`ratelimit`, sans-I/O) and the clock-driven limits over them
(`limits`); one-timer wake-ups (`wakeup`); which client an address belongs
to (`addresses`); and who a web connection comes from (`origins`).
"""
