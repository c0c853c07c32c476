"""Downstream tasks (one registry, ``create_task``) that judge decoded images."""

from __future__ import annotations

from typing import Any

from mocodec.errors import ConfigError
from mocodec.tasks import classification, detection, vlm  # noqa: F401  (register the tasks)
from mocodec.tasks.base import Task
from mocodec.tasks.registry import TASKS, register_task

__all__ = ["TASKS", "Task", "create_task", "list_tasks", "register_task", "task_class"]


def create_task(name: str, **kwargs: Any) -> Task:
    return TASKS.create(name, **kwargs)


def list_tasks() -> list[str]:
    return TASKS.names()


def task_class(name: str) -> type[Task]:
    """The :class:`Task` class of task ``name``, without building it (a merge needs only its ``summarize``).

    A task registered as a class is its own; a factory function declares its class with
    ``@register_task(task_class=...)``.
    """
    factory = TASKS.get(name)
    cls = factory if isinstance(factory, type) else TASKS.meta(name).get("task_class")
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"task '{name}' does not declare its Task class (register it with task_class=...)")
    return cls
