"""The fund catalogue (streams/nlu/data/funds.json) and a matcher for names, aliases and codes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"
CATALOGUE_PATH = DATA_DIR / "funds.json"


@dataclass(frozen=True, slots=True)
class Fund:
    code: str
    name: str
    full_name: str
    aliases: tuple[str, ...]
    share_class: str
    type: str
    risk: str
    nav: float
    nav_date: str
    redemption_arrival: str
    fees: dict[str, str] = field(default_factory=dict)
    manager: str = ""  # the fund company that manages it (融通基金, 易方达基金…)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_name(self) -> str:
        """The name without its share-class letter (融通领先成长混合A -> 融通领先成长混合)."""
        return self.name[:-1] if self.name[-1:] in ("A", "B", "C") else self.name


_KNOWN = {
    "code",
    "name",
    "full_name",
    "aliases",
    "share_class",
    "type",
    "risk",
    "nav",
    "nav_date",
    "redemption_arrival",
    "fees",
    "manager",
}


@dataclass(frozen=True)
class Catalogue:
    funds: tuple[Fund, ...]

    def __post_init__(self) -> None:
        by_code = {f.code: f for f in self.funds}
        names: dict[str, list[Fund]] = {}
        for f in self.funds:
            keys = {f.name, f.full_name, f.base_name, *f.aliases}
            for k in keys:
                names.setdefault(k.lower(), []).append(f)
        alts = sorted(names, key=len, reverse=True)
        object.__setattr__(self, "_by_code", by_code)
        object.__setattr__(self, "_names", names)
        object.__setattr__(
            self, "_pattern", re.compile("|".join(re.escape(a) for a in alts if len(a) >= 2))
        )

    def by_code(self, code: str) -> Fund | None:
        return self._by_code.get(code)  # type: ignore[attr-defined]

    def match_names(self, text: str) -> list[tuple[int, int, list[Fund]]]:
        """Non-overlapping longest matches of fund names/aliases: (start, end, candidates)."""
        low = text.lower()
        out: list[tuple[int, int, list[Fund]]] = []
        for m in self._pattern.finditer(low):  # type: ignore[attr-defined]
            out.append((m.start(), m.end(), self._names[m.group()]))  # type: ignore[attr-defined]
        return out


def _fund(d: dict[str, Any]) -> Fund:
    return Fund(
        code=str(d["code"]),
        name=d["name"],
        full_name=d.get("full_name", d["name"]),
        aliases=tuple(d.get("aliases", ())),
        share_class=d.get("share_class", "A"),
        type=d.get("type", ""),
        risk=d.get("risk", ""),
        nav=float(d.get("nav", 0.0)),
        nav_date=d.get("nav_date", ""),
        redemption_arrival=d.get("redemption_arrival", ""),
        fees=dict(d.get("fees", {})),
        manager=d.get("manager", ""),
        extra={k: v for k, v in d.items() if k not in _KNOWN},
    )


def load_catalogue_file(path: Path | str) -> Catalogue:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    items = raw["funds"] if isinstance(raw, dict) else raw
    return Catalogue(tuple(_fund(d) for d in items))


@lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    return load_catalogue_file(CATALOGUE_PATH)
