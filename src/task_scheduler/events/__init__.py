"""Operational webhooks: a tenant's subscriptions to events of its timers (timer.failed,
timer.expired) and destinations (destination.opened, destination.closed,
destination.disabled), delivered by the timer
engine itself (delivery/notifications.py)."""
