"""In-memory snapshot of keys, models and providers for the proxy's hot path.

The proxy never queries the DB per request: it reads a Snapshot rebuilt only when the shared
config version (bumped by every console/API change, see services.state) moves. The version is
polled at most every CACHE_TTL_SECONDS per worker, so a change reaches every worker and host
within that time, and an idle key costs nothing. With GATEWAY_REDIS_URL set, a change is also
announced over Redis pub/sub (app.services.notify): each process's subscriber marks the cache
stale, so the next request re-validates at once; the polling stays as the fallback.
"""
from __future__ import annotations

import fnmatch
import ipaddress
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.models import GatewayKey, GatewayState, Model, ModelGroup, Provider, Team, utcnow
from app.providers.base import Adapter
from app.providers.registry import get_adapter
from app.services import providers as provider_service
from app.services import settings as settings_service
from app.services import state
from app.services.keys import hash_key

log = logging.getLogger(__name__)
MTOK = Decimal(1_000_000)


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    owner: str | None
    scopes: frozenset[str]
    allowed_models: tuple[str, ...]
    expires_at: datetime | None
    usable: bool
    limits: dict[str, Any]
    budget: dict[str, Any]
    allowed_ips: tuple[Any, ...]
    tags: dict[str, Any]
    sensitivity: dict[str, Any] | None = None
    log_bodies: bool = False

    def active(self, now: datetime) -> bool:
        return self.usable and (self.expires_at is None or self.expires_at > now)

    def may_use(self, model_name: str) -> bool:
        if not self.allowed_models:
            return True
        return any(fnmatch.fnmatchcase(model_name, pattern) for pattern in self.allowed_models)

    def ip_allowed(self, ip: str | None) -> bool:
        if not self.allowed_ips:
            return True
        try:
            addr = ipaddress.ip_address(ip or "")
        except ValueError:
            return False
        return any(addr in net for net in self.allowed_ips)


@dataclass(frozen=True)
class Route:
    """One deployment: a model on a provider, with the adapter ready to use."""

    model_pk: int
    name: str
    upstream_id: str
    kind: str
    provider_id: int
    provider_name: str
    adapter: Adapter | None
    adapter_error: str | None
    connect_timeout: float
    read_timeout: float
    input_price: Decimal
    output_price: Decimal
    cached_price: Decimal | None
    supports_streaming: bool
    created: int
    owned_by: str
    priority: int = 0
    weight: int = 1
    max_output_tokens: int | None = None
    model_limits: dict[str, Any] | None = None
    provider_limits: dict[str, Any] | None = None
    trust_level: str = "public"
    context_window: int | None = None
    capabilities: frozenset[str] = frozenset()
    log_bodies: bool = False

    def cost(self, prompt: int, completion: int, cached: int = 0) -> Decimal:
        """Exact cost in USD: cached input tokens at the cached price when the model has one."""
        cached = min(cached, prompt) if self.cached_price is not None else 0
        total = ((prompt - cached) * self.input_price + completion * self.output_price
                 + cached * (self.cached_price or Decimal(0)))
        return (total / MTOK).quantize(Decimal("0.00000001"))


@dataclass
class Snapshot:
    version: int
    keys: dict[str, KeyInfo] = field(default_factory=dict)  # by sha256
    keys_by_id: dict[int, KeyInfo] = field(default_factory=dict)
    by_name: dict[str, list[Route]] = field(default_factory=dict)
    by_upstream: dict[str, list[Route]] = field(default_factory=dict)
    team_budgets: dict[str, dict[str, Any]] = field(default_factory=dict)  # team name -> budget
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> routing config
    settings: dict[str, Any] = field(default_factory=dict)
    provider_names: dict[int, str] = field(default_factory=dict)

    def resolve(self, model: str) -> list[Route]:
        """Public name/alias first, then the upstream id."""
        return self.by_name.get(model) or self.by_upstream.get(model) or []


def key_info(k: GatewayKey) -> KeyInfo:
    """Plain values of a key row, as the proxy sees them."""
    nets = []
    for cidr in k.allowed_ips or []:
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    return KeyInfo(
        id=k.id, name=k.name, prefix=k.prefix, owner=k.owner, scopes=frozenset(k.scopes or []),
        allowed_models=tuple(k.allowed_models or []), expires_at=k.expires_at,
        usable=bool(k.enabled) and k.revoked_at is None, limits=dict(k.limits or {}),
        budget=dict(k.budget or {}), allowed_ips=tuple(nets), tags=dict(k.tags or {}),
        sensitivity=dict(k.sensitivity) if k.sensitivity else None, log_bodies=bool(k.log_bodies))


def _build(version: int) -> Snapshot:
    snap = Snapshot(version=version)
    for k in db.session.scalars(db.select(GatewayKey).where(GatewayKey.revoked_at.is_(None))):
        snap.keys[k.key_hash] = snap.keys_by_id[k.id] = key_info(k)
    state_row = db.session.get(GatewayState, 1)
    snap.settings = settings_service.merged(state_row.settings if state_row else None)
    for group in db.session.scalars(db.select(ModelGroup)):
        snap.groups[group.name] = {"strategy": group.strategy, "fallbacks": list(group.fallbacks or []),
                                   "retries": group.retries, "timeout_s": group.timeout_s}
    for team in db.session.scalars(db.select(Team)):
        if team.budget:
            snap.team_budgets[team.name] = dict(team.budget)
    rows = db.session.execute(
        db.select(Model, Provider).join(Provider)
        .where(Model.enabled.is_(True), Provider.enabled.is_(True))
        .order_by(Model.priority, Model.id)).all()
    adapters: dict[int, tuple[Adapter | None, str | None]] = {}
    for model, provider in rows:
        if provider.id not in adapters:
            try:
                adapters[provider.id] = (get_adapter(provider_service.provider_config(provider)), None)
            except Exception as exc:  # undecryptable secret, unknown type: fail the route, not the cache
                log.error("provider %s unusable: %s", provider.name, exc)
                adapters[provider.id] = (None, f"provider '{provider.name}' is misconfigured: {exc}")
        adapter, error = adapters[provider.id]
        route = Route(
            model_pk=model.id, name=model.name, upstream_id=model.model_id, kind=model.kind,
            provider_id=provider.id, provider_name=provider.name, adapter=adapter,
            adapter_error=error, connect_timeout=provider.connect_timeout,
            read_timeout=provider.read_timeout,
            input_price=Decimal(model.input_price_per_mtok or 0),
            output_price=Decimal(model.output_price_per_mtok or 0),
            cached_price=(Decimal(model.cached_input_price_per_mtok)
                          if model.cached_input_price_per_mtok is not None else None),
            supports_streaming=model.supports_streaming,
            created=int(model.created_at.timestamp()), owned_by=provider.slug,
            priority=model.priority, weight=model.weight,
            max_output_tokens=model.max_output_tokens, model_limits=model.limits or None,
            provider_limits=provider.limits or None, trust_level=provider.trust_level,
            context_window=model.context_window, log_bodies=bool(model.log_bodies),
            capabilities=frozenset(c for c, on in (("streaming", model.supports_streaming),
                                                   ("tools", model.supports_tools),
                                                   ("vision", model.supports_vision),
                                                   ("json", model.supports_json)) if on))
        snap.provider_names[provider.id] = provider.name
        snap.by_name.setdefault(model.name, []).append(route)
        snap.by_upstream.setdefault(model.model_id, []).append(route)
    return snap


class RuntimeCache:
    def __init__(self, ttl: float):
        self.ttl = ttl
        self._snap: Snapshot | None = None
        self._checked = 0.0
        self._stale = False  # the last re-check failed (database unreachable)
        self._notified = False   # a config notification came: re-validate on the next get
        self._lock = threading.Lock()
        self.listening: int | None = None    # pid whose notification subscriber knows us

    def get(self) -> Snapshot:
        now = time.monotonic()
        snap = self._snap
        if snap is not None and not self._notified and now - self._checked < self.ttl:
            return snap
        with self._lock:
            if (self._snap is not None and not self._notified
                    and time.monotonic() - self._checked < self.ttl):
                return self._snap
            # cleared BEFORE reading the version: a notification arriving while we read marks
            # the cache again instead of being overwritten by this check
            self._notified = False
            try:
                version = state.version()
                if self._snap is None or version != self._snap.version:
                    self._snap = _build(version)
            except SQLAlchemyError:
                db.session.rollback()
                if self._snap is None:
                    raise
                # the database is unreachable: keep serving the last good snapshot (keys and
                # models as they were) and try again after the next TTL, not per request
                if not self._stale:
                    log.warning("config database unreachable: serving the cached keys and "
                                "models (version %s) until it answers", self._snap.version)
                self._stale = True
                self._checked = time.monotonic()
                return self._snap
            if self._stale:
                log.warning("config database reachable again (version %s)", version)
                self._stale = False
            self._checked = time.monotonic()
            db.session.rollback()  # end the read transaction: the hot path holds no connection
            return self._snap

    def mark_stale(self, version: int | None = None) -> None:
        """A config change was announced (``version``: the new one, if known): the next
        :meth:`get` re-validates. Nothing to do if the snapshot already is that version."""
        snap = self._snap
        if version is not None and snap is not None and snap.version == version:
            return
        self._notified = True

    def refresh_soon(self, min_age: float = 0.05) -> Snapshot:
        """Re-validate now unless that happened in the last `min_age` s (a key created a moment
        ago on another worker works at once; random keys cost at most 20 checks/s)."""
        if time.monotonic() - self._checked >= min_age:
            self._checked = 0.0
        return self.get()

    def get_cached(self) -> Snapshot:
        """The current snapshot without re-validating (for metrics labels)."""
        return self._snap or Snapshot(version=-1)

    def invalidate(self) -> None:
        self._checked = 0.0


def cache() -> RuntimeCache:
    ext = current_app.extensions
    rc = ext.get("gateway_runtime")
    if rc is None:
        rc = ext["gateway_runtime"] = RuntimeCache(current_app.config["CACHE_TTL_SECONDS"])
    if rc.listening != os.getpid():     # first use in this process (or in a forked child)
        rc.listening = os.getpid()
        url = current_app.config.get("REDIS_URL")
        if url:
            from app.services import notify
            notify.listen(url, rc)
    return rc


def authenticate(raw: str | None, snap: Snapshot) -> KeyInfo | None:
    if not raw or len(raw) > 256:
        return None
    info = snap.keys.get(hash_key(raw))
    if info is None or not info.active(utcnow()):
        return None
    return info
