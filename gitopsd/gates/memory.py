"""What the verification gates remember between reconciles: queries Prometheus already parsed."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Past this many remembered queries the memory starts over (a bound, not a working size).
LIMIT = 10_000


@dataclass(slots=True)
class Memory:
    checked: set[tuple[str, str]] = field(default_factory=set)

    def remember(self, url: str, query: str) -> None:
        if len(self.checked) > LIMIT:
            self.checked.clear()
        self.checked.add((url, query))

    def knows(self, url: str, query: str) -> bool:
        return (url, query) in self.checked
