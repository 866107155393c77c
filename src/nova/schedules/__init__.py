"""Schedules: run a function's event on a cron expression or an interval (see scheduler)."""
