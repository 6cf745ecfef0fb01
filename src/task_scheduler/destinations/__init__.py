"""Destinations: where a tenant's timers go (by default their URL's origin), each with a circuit
breaker that holds its timers while it fails, and a pause switch (issue 16)."""
