"""Fault injection: added latency, latency spikes and injected 429/500 answers.

Rules: a :class:`FaultConfig` describes what to inject; a :class:`FaultInjector` draws from seeded
RNGs (reproducible), the spikes from their own RNG so switching them on leaves the 429/500 sequence
unchanged. A forced rule with ``after=True`` lets the request be processed first and then replaces
the answer (a lost response: the change was made, the client sees an error).
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from devstack.emulators.common.util import JSONDict


@dataclass
class ForcedFault:
    """Answer the next ``count`` matching requests with ``status`` (deterministic).

    ``after=False`` (default): instead of handling the request (nothing changes). ``after=True``:
    after handling it (the change is made, the answer is lost). ``path``, if set, must equal the
    request's path (``/events`` but not ``/events/watch``, which ``path_prefix`` would also match).
    """

    status: int
    count: int = 1
    path_prefix: str = ""
    method: str = ""
    retry_after: int | None = None
    after: bool = False
    path: str = ""


@dataclass
class FaultConfig:
    latency_ms: int = 0
    # Latency spikes: this fraction of eligible requests waits an extra delay drawn uniformly from
    # [spike_min_ms, spike_ms] (on top of latency_ms, before any injected answer). Spikes use their
    # own RNG (seeded from ``seed``), so switching them on leaves the 429/500 sequence unchanged.
    spike_rate: float = 0.0
    spike_ms: int = 0
    spike_min_ms: int = 0
    rate_429: float = 0.0
    rate_500: float = 0.0
    seed: int = 0
    retry_after: int = 1
    # Only requests whose path starts with one of these are eligible ([] = every
    # non-admin path).
    paths: list[str] = field(default_factory=list)
    forced: list[ForcedFault] = field(default_factory=list)

    def to_json(self) -> JSONDict:
        return asdict(self)


#: Mixed into the seed of the spike RNG, so spikes and injected answers draw independent sequences.
_SPIKE_SALT = 0x5B1CE


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.config = FaultConfig()
        self._rng = random.Random(0)  # noqa: S311 - test fault injection, not crypto
        self._spike_rng = random.Random(_SPIKE_SALT)  # noqa: S311
        self.injected: list[JSONDict] = []
        #: Every latency spike applied: method, path and the extra delay in milliseconds.
        self.spikes: list[JSONDict] = []

    def configure(self, **changes: Any) -> FaultConfig:
        with self._lock:
            forced = changes.pop("forced", None)
            unknown = [k for k in changes if k not in FaultConfig.__dataclass_fields__]
            if unknown:
                raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
            cfg = replace(self.config, **changes)
            if forced is not None:
                cfg.forced = [f if isinstance(f, ForcedFault) else ForcedFault(**f) for f in forced]
            if not (0.0 <= cfg.rate_429 <= 1.0 and 0.0 <= cfg.rate_500 <= 1.0 and cfg.rate_429 + cfg.rate_500 <= 1.0):
                raise ValueError("rate_429 and rate_500 must be within [0, 1] and sum to at most 1")
            if not 0.0 <= cfg.spike_rate <= 1.0:
                raise ValueError("spike_rate must be within [0, 1]")
            if not 0 <= cfg.spike_min_ms <= cfg.spike_ms or (cfg.spike_rate > 0 and cfg.spike_ms <= 0):
                raise ValueError("spikes need 0 <= spike_min_ms <= spike_ms and spike_ms > 0")
            self.config = cfg
            if "seed" in changes:
                self._rng = random.Random(cfg.seed)  # noqa: S311
                self._spike_rng = random.Random(cfg.seed ^ _SPIKE_SALT)  # noqa: S311
            return cfg

    def reset(self) -> None:
        with self._lock:
            self.config = FaultConfig()
            self._rng = random.Random(0)  # noqa: S311
            self._spike_rng = random.Random(_SPIKE_SALT)  # noqa: S311
            self.injected.clear()
            self.spikes.clear()

    def latency_seconds(self) -> float:
        with self._lock:
            return max(self.config.latency_ms, 0) / 1000.0

    def delay_seconds(self, method: str, path: str) -> tuple[float, int]:
        """How long to hold this request: ``(seconds, spike_ms)`` (``spike_ms`` 0 when no spike).

        ``latency_ms`` applies to every non-admin request; a spike only to requests the ``paths``
        filter admits, with probability ``spike_rate``.
        """
        with self._lock:
            cfg = self.config
            base = max(cfg.latency_ms, 0)
            spike = 0
            eligible = not cfg.paths or any(path.startswith(p) for p in cfg.paths)
            if eligible and cfg.spike_rate > 0 and self._spike_rng.random() < cfg.spike_rate:
                spike = self._spike_rng.randint(cfg.spike_min_ms, cfg.spike_ms)
                self.spikes.append({"method": method, "path": path, "spike_ms": spike})
            return (base + spike) / 1000.0, spike

    def _forced(self, method: str, path: str, *, after: bool) -> tuple[int, int] | None:
        """The first live forced rule of this phase matching the request (consumed), if any."""
        cfg = self.config
        for rule in cfg.forced:
            if rule.count <= 0 or rule.after is not after:
                continue
            if rule.path_prefix and not path.startswith(rule.path_prefix):
                continue
            if rule.path and rule.path != path:
                continue
            if rule.method and rule.method.upper() != method.upper():
                continue
            rule.count -= 1
            cfg.forced = [r for r in cfg.forced if r.count > 0]
            ra = rule.retry_after if rule.retry_after is not None else cfg.retry_after
            entry: JSONDict = {"method": method, "path": path, "status": rule.status}
            if after:
                entry["after"] = True
            self.injected.append(entry)
            return rule.status, ra
        return None

    def decide_after(self, method: str, path: str) -> tuple[int, int] | None:
        """After the request was handled: ``(status, retry_after)`` to answer instead, or ``None``."""
        with self._lock:
            return self._forced(method, path, after=True)

    def decide(self, method: str, path: str) -> tuple[int, int] | None:
        """Return ``(status, retry_after)`` to inject, or ``None``."""
        with self._lock:
            cfg = self.config
            forced = self._forced(method, path, after=False)
            if forced is not None:
                return forced
            if cfg.paths and not any(path.startswith(p) for p in cfg.paths):
                return None
            if cfg.rate_429 <= 0 and cfg.rate_500 <= 0:
                return None
            r = self._rng.random()
            status: int | None = None
            if r < cfg.rate_429:
                status = 429
            elif r < cfg.rate_429 + cfg.rate_500:
                status = 500
            if status is None:
                return None
            self.injected.append({"method": method, "path": path, "status": status})
            return status, cfg.retry_after
