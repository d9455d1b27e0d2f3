"""Notifications: SMS, email and webhook alerts that never block trading (issue 7).

The engine builds a `NotificationService` (see `service.py`), starts it, and calls
`notify(event)` with events from `events.py`; the API reads and writes the owner's
settings through `settings.py`. docs/notifications.md explains how to set up each channel.
"""
