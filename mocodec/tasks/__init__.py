"""Downstream tasks (one registry, ``create_task``) that judge decoded images."""

from __future__ import annotations

from typing import Any

from mocodec.tasks import classification, detection, vlm  # noqa: F401  (register the tasks)
from mocodec.tasks.base import Task
from mocodec.tasks.registry import TASKS, register_task

__all__ = ["TASKS", "Task", "create_task", "list_tasks", "register_task"]


def create_task(name: str, **kwargs: Any) -> Task:
    return TASKS.create(name, **kwargs)


def list_tasks() -> list[str]:
    return TASKS.names()
