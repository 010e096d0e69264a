"""Errors raised by cdc_core.

Every message is one sentence that says what failed, where, and how to fix it. Only the faces (CLI, TUI,
notebooks) turn them into exit codes or notifications.
"""


class CdcError(Exception):
    "Base class of every error cdc_core raises on purpose."


class ConfigError(CdcError):
    "The configuration is invalid (names the key and the fix)."


class InputError(CdcError):
    "An input file cannot be captured as it is (bad header, duplicate or NULL keys, unparsable values)."


class SourceError(CdcError):
    "The source could not deliver a table's file."


class LakeError(CdcError):
    "The lake could not store or return a file."


class StateError(CdcError):
    "The local state (committed snapshots, last fetch) is missing or unusable."


class BusyError(StateError):
    "Another capture holds the data dir's lock (not a failure of this cycle: that one is running)."


class HeldError(CdcError):
    "A capture broke a guard: nothing was published, it waits for a person to accept it."
