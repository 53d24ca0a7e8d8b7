"""Tasks are plain async functions marked with `@task`; no broker exists at
import time. `create_broker` declares them as Dramatiq actors.

To add tasks, write a `tasks.py` in your domain folder and name its module in
your plugin's `task_modules` (app/plugins.py); `WORKER_MODULES` (default: none)
adds modules without a plugin.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from app.plugin import Plugin

P = ParamSpec("P")
R = TypeVar("R")
TaskFunction = Callable[..., Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class TaskSpec:
    function: TaskFunction
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.function.__module__}.{self.function.__qualname__}"


TASKS: dict[str, TaskSpec] = {}


def task(
    **options: Any,
) -> Callable[
    [Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]
]:
    """Register an async function as a task (options: Dramatiq actor options)."""

    def register(
        function: Callable[P, Coroutine[Any, Any, R]],
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        spec = TaskSpec(function, options)
        TASKS[spec.name] = spec
        return function

    return register


def task_name(function: TaskFunction) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def task_modules(plugins: Iterable[Plugin], worker_modules: Iterable[str]) -> list[str]:
    """The modules whose tasks the worker runs: every plugin's `task_modules`,
    then WORKER_MODULES', each once."""
    named = [module for plugin in plugins for module in plugin.task_modules]
    return list(dict.fromkeys([*named, *worker_modules]))


def load(modules: Iterable[str]) -> list[TaskSpec]:
    """Import the task modules (which registers their tasks); returns every
    task registered in this process."""
    for module in modules:
        importlib.import_module(module)
    return list(TASKS.values())
