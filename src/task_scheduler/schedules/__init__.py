"""Recurring schedules (issue 14). For now only the pure cron expression module, `cron`; the API,
the tables and the engine that turn occurrences into timers come once the timer engine settles."""
