"""What a translation did: notes for the log, warnings for what it drops, errors for the rest."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any


class UpgradeWarning(UserWarning):
    """A 2.x setting that instseg ignores or changes slightly; the message says which and how."""


class Config2xError(ValueError):
    """A 2.x setting instseg cannot reproduce; ignoring it would silently change the run."""


class Report:
    """Collects the translation's notes; warns and raises with the config file's name in front.

    Translators also keep here what one part learns for another: the normalisation and padding
    found in the pipelines (for the model's data preprocessor) and the runner's kind and length
    (for the schedulers).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.notes: list[str] = []
        self.norm: dict[str, dict] = {}  # pipeline name -> Normalize arguments
        self.pad: dict[str, dict] = {}  # pipeline name -> Pad arguments
        self.tta: dict[str, list] = {}  # pipeline name -> its test-time-augmentation pipeline
        self.by_epoch = True
        self.max_length: int | None = None  # max_epochs or max_iters

    def note(self, message: str) -> None:
        """Record one translated setting (logged at INFO)."""
        self.notes.append(message)

    def warn(self, message: str) -> None:
        """Record and warn about a setting instseg ignores or approximates."""
        self.notes.append(f'WARNING: {message}')
        warnings.warn(f'{self.source}: {message}', UpgradeWarning, stacklevel=3)

    def error(self, message: str) -> Config2xError:
        """The exception to raise for a setting that cannot be translated faithfully."""
        return Config2xError(f'{self.source}: {message}')

    def leftover(self, options: dict, where: str, strict: bool = False) -> None:
        """Report the options of ``where`` that no translator consumed.

        ``strict``: they would change the run (a scheduler or optimizer step option), so raise.
        """
        names = [name for name in options if name != '_delete_']
        if not names:
            return
        listed = ', '.join(f'{where}.{name}' for name in names)
        if strict:
            raise self.error(
                f'{listed}: not a 2.x option instseg can translate; without it the run would '
                'differ, so write this part of the config in instseg (mmdetection 3.x) keys'
            )
        self.warn(f'{listed}: not a 2.x option instseg knows; ignored')


def pop_all(options: dict, names: Iterable[str]) -> dict[str, Any]:
    """Pop ``names`` that are present in ``options`` into a new dict (in the order given)."""
    return {name: options.pop(name) for name in names if name in options}
