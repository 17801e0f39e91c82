"""The model: the quarter's order of events (:mod:`.market`), the enterprise agent set
(:mod:`.enterprises`), providers and their books (:mod:`.providers`), demand, network.

``CloudMarket`` is imported on first use (PEP 562), so importing a submodule stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudwar.model.market import CloudMarket, DemandCurve

__all__ = ["CloudMarket", "DemandCurve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cloudwar.model import market

        return getattr(market, name)
    raise AttributeError(f"module 'cloudwar.model' has no attribute {name!r}")
