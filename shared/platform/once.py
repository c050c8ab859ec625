"""The one way a container builds something once: :func:`once` and :func:`once_per`.

A Lambda container serves many invocations; what is expensive to build (settings read from the
environment, boto3 clients, the vault with its key cache, the OAuth clients, the workers) is built
on first use and kept for the container's life. Every such cache in the code base is one of these
two, so one call, :func:`reset_all`, forgets all of them — the local stack and the tests call it
whenever they change the environment, instead of keeping a list of per-module resets.

Rules:

* Building is lazy and happens at most once per key while nobody resets: concurrent first callers
  (the local gateway runs requests on threads) wait on one lock and get the same object.
* A factory that raises caches nothing; the next call tries again.
* :func:`reset_all` is for tests and the local stack; production code never calls it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

_UNSET = object()
_registry: list[Once[Any] | OncePer[Any, Any]] = []
_registry_lock = threading.Lock()


class Once(Generic[T]):
    """A zero-argument factory whose result is kept until :meth:`reset` (see :func:`once`)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: object = _UNSET
        self._lock = threading.RLock()
        functools.update_wrapper(self, factory)

    def __call__(self) -> T:
        value = self._value
        if value is _UNSET:
            with self._lock:
                if self._value is _UNSET:
                    self._value = self._factory()
                value = self._value
        return cast(T, value)

    def reset(self) -> None:
        """Forget the built value; the next call builds anew."""
        with self._lock:
            self._value = _UNSET


class OncePer(Generic[K, T]):
    """A one-argument factory whose results are kept per (hashable) argument (see :func:`once_per`)."""

    def __init__(self, factory: Callable[[K], T]) -> None:
        self._factory = factory
        self._values: dict[K, T] = {}
        self._lock = threading.RLock()
        functools.update_wrapper(self, factory)

    def __call__(self, key: K) -> T:
        try:
            return self._values[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._values:
                self._values[key] = self._factory(key)
            return self._values[key]

    def reset(self) -> None:
        """Forget every built value."""
        with self._lock:
            self._values.clear()


def once(factory: Callable[[], T]) -> Once[T]:
    """Decorate a zero-argument factory: built on first call, kept until :func:`reset_all`."""
    built = Once(factory)
    with _registry_lock:
        _registry.append(built)
    return built


def once_per(factory: Callable[[K], T]) -> OncePer[K, T]:
    """Decorate a one-argument factory: one value per argument, kept until :func:`reset_all`."""
    built = OncePer(factory)
    with _registry_lock:
        _registry.append(built)
    return built


def reset_all() -> None:
    """Forget everything every :func:`once` / :func:`once_per` factory built (environment changed)."""
    with _registry_lock:
        entries = list(_registry)
    for entry in entries:
        entry.reset()
