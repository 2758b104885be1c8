"""Read the functions of a ``func.FunctionApp`` and the bindings each one declares."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions.decorators.core import Binding, Trigger


@dataclass(frozen=True)
class DiscoveredFunction:
    """One function as the Functions host would index it."""

    name: str
    trigger: Trigger
    bindings: Sequence[Binding]
    user_function: Callable[..., Any]

    @property
    def trigger_type(self) -> str:
        """The binding type of the trigger, e.g. ``httpTrigger`` or ``blobTrigger``."""
        return self.trigger.type


def discover(function_app: func.FunctionApp) -> list[DiscoveredFunction]:
    """Every function of the app, blueprints included, in declaration order."""
    # get_functions() remembers the names it has seen and refuses to run a second time;
    # forget them so the same app can be served again (tests, restarts). Duplicate names
    # within the app are still refused.
    function_app.functions_bindings = None
    return [
        DiscoveredFunction(
            name=function.get_function_name(),
            trigger=function.get_trigger(),
            bindings=function.get_bindings(),
            user_function=function.get_user_function(),
        )
        for function in function_app.get_functions()
    ]


def check_takes_only_the_trigger(
    function: DiscoveredFunction, also_allowed: Collection[str] = ()
) -> None:
    """Refuse at startup, as the worker would, a function needing more than its trigger.

    ``also_allowed`` names the binding types the caller supplies besides the trigger (the
    ``http`` output binding of an HTTP function, which is its return value).
    """
    extra_bindings = [
        f"{binding.name} ({binding.type})"
        for binding in function.bindings
        if binding is not function.trigger and binding.type not in also_allowed
    ]
    if extra_bindings:
        raise ValueError(
            f"{function.name}: the local host does not supply these bindings yet: "
            + ", ".join(extra_bindings)
        )
    parameters = list(inspect.signature(function.user_function).parameters)
    if parameters != [function.trigger.name]:
        raise ValueError(
            f"{function.name}: takes {parameters}, but its only binding is its "
            f"{function.trigger_type} {function.trigger.name!r}"
        )
