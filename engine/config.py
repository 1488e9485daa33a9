"""The whole configuration: settings, sequences, templates and providers, loaded and checked together."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import ConfigError, Problem
from .handoff_rules import setup_problems
from .holiday_overrides import load_overrides
from .offdays import NO_OVERRIDES, HolidayOverrides
from .sequences import Sequence, read_sequences
from .settings import Settings, load_settings
from .templates import Renderer

__all__ = ["Config", "load_config", "read_config", "config_dir"]


def config_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``--config DIR``, else ``$FOLLOWUP_CONFIG``, else ``./config``."""
    return Path(explicit or os.environ.get("FOLLOWUP_CONFIG") or "config").resolve()


@dataclass
class Config:
    dir: Path
    settings: Settings
    sequences: dict[str, Sequence]
    renderer: Renderer
    #: the dates ``holidays.yaml`` adds to or removes from the holidays calendar
    holidays: HolidayOverrides = NO_OVERRIDES

    def sequence(self, name: str) -> Sequence:
        from .errors import InputError

        try:
            return self.sequences[name]
        except KeyError:
            known = ", ".join(sorted(self.sequences)) or "none"
            raise InputError(f"no sequence named {name!r} in {self.dir / 'sequences'} (known: {known})") from None


def read_config(directory: str | os.PathLike | None = None) -> tuple[Config | None, list[Problem]]:
    """Load what loads and list every problem: the config holds the sequences that loaded without a problem
    (``None`` when settings.yaml itself does not load); a missing folder raises :class:`ConfigError`."""
    folder = config_dir(directory)
    if not folder.is_dir():
        raise ConfigError(Problem(str(folder), "", "config folder not found; run `followup init` or pass --config DIR"))
    if not (folder / "settings.yaml").exists() and (folder / "config" / "settings.yaml").is_file():
        raise ConfigError(Problem(str(folder), "", "this is a project folder, not its config folder; "
                                                   f"pass --config {folder / 'config'}"))
    problems: list[Problem] = []
    settings = None
    try:
        settings = load_settings(folder)
    except ConfigError as err:
        problems.extend(err.problems)
    sequences, seq_problems = read_sequences(folder, settings)
    problems.extend(seq_problems)
    if settings is not None:
        problems.extend(setup_problems(sequences, settings))
    holidays = NO_OVERRIDES
    try:
        holidays = load_overrides(folder)
    except ConfigError as err:
        problems.extend(err.problems)
    if settings is None:
        return None, problems
    settings.send_window = replace(settings.send_window, overrides=holidays)
    for seq in sequences.values():
        if seq.send_window is not None:
            seq.send_window = replace(seq.send_window, overrides=holidays)
    return Config(folder, settings, sequences, Renderer(settings.templates_dir), holidays), problems


def load_config(directory: str | os.PathLike | None = None) -> Config:
    """Load settings and every sequence; raise :class:`ConfigError` with every problem in both."""
    config, problems = read_config(directory)
    if problems:
        raise ConfigError(problems)
    return config
