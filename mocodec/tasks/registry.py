"""The task registry; importing :mod:`mocodec.tasks` fills it."""

from mocodec.registry import Registry

TASKS = Registry("task")
register_task = TASKS.register
