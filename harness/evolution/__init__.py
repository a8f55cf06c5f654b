"""Schema compatibility as code: JSON Schema subset checking, compatibility modes, semantic
version rules for event schemas, and the contract diff behind `accord diff`.

The rules are documented, one example each, in docs/compatibility.md.
"""

from harness.evolution.modes import (
    DEFAULT_MODE,
    Mode,
    Schema,
    VersionedViolation,
    backward_violations,
    check,
    check_history,
    forward_violations,
)
from harness.evolution.rules import RULES, Rule, Violation

__all__ = [
    "DEFAULT_MODE",
    "RULES",
    "Mode",
    "Rule",
    "Schema",
    "VersionedViolation",
    "Violation",
    "backward_violations",
    "check",
    "check_history",
    "forward_violations",
]
