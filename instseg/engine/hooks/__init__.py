"""Training hooks that mmengine lacks (registered in ``instseg.registry.HOOKS``)."""

from __future__ import annotations

__all__: list[str] = []
