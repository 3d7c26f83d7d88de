"""Node settings: flags and ``HEADWATER_*`` environment variables (flags win)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    store: str = "embedded"  # embedded | cassandra
    data_dir: Path = Path(".headwater-data")
    auto_create: bool = True  # HEADWATER_AUTO_CREATE
    idle_timeout_s: float = 10.0  # HEADWATER_IDLE_TIMEOUT_S: a silent sender is cut off mid-body
    admin_key: str | None = None  # HEADWATER_ADMIN_KEY: control API bearer key
    sweep_interval_s: float = 10.0  # HEADWATER_SWEEP_INTERVAL_S: TTL sweep of the embedded store
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)

        def get(name: str) -> str | None:
            return env.get(f"HEADWATER_{name}")

        base = cls()
        return cls(
            host=get("HOST") or base.host,
            port=int(get("PORT") or base.port),
            store=get("STORE") or base.store,
            data_dir=Path(get("DATA_DIR") or base.data_dir),
            auto_create=(get("AUTO_CREATE") or "1").lower() not in ("0", "false", "no"),
            idle_timeout_s=float(get("IDLE_TIMEOUT_S") or base.idle_timeout_s),
            admin_key=get("ADMIN_KEY") or None,
            sweep_interval_s=float(get("SWEEP_INTERVAL_S") or base.sweep_interval_s),
            log_level=get("LOG_LEVEL") or base.log_level,
        )
