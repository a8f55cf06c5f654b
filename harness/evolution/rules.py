"""The rule ids Accord reports, and what each one means.

A schema rule names a change from the old schema to the new one. Most rules come in pairs,
one for each direction of a change (`required-added` / `required-removed`): which of the two
breaks what depends on the compatibility mode. `docs/compatibility.md` documents every id
declared here, with an example; a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Rule(StrEnum):
    """A kind of JSON Schema change that can make instances of one schema invalid under another."""

    PROPERTY_ADDED = "property-added"
    PROPERTY_REMOVED = "property-removed"
    REQUIRED_ADDED = "required-added"
    REQUIRED_REMOVED = "required-removed"
    TYPE_NARROWED = "type-narrowed"
    TYPE_WIDENED = "type-widened"
    TYPE_CHANGED = "type-changed"
    ENUM_VALUE_ADDED = "enum-value-added"
    ENUM_VALUE_REMOVED = "enum-value-removed"
    ENUM_ADDED = "enum-added"
    ENUM_REMOVED = "enum-removed"
    CONST_CHANGED = "const-changed"
    CONST_ADDED = "const-added"
    CONST_REMOVED = "const-removed"
    ADDITIONAL_PROPERTIES_CLOSED = "additional-properties-closed"
    ADDITIONAL_PROPERTIES_OPENED = "additional-properties-opened"
    PATTERN_PROPERTY_ADDED = "pattern-property-added"
    PATTERN_PROPERTY_REMOVED = "pattern-property-removed"
    CONSTRAINT_TIGHTENED = "constraint-tightened"
    CONSTRAINT_RELAXED = "constraint-relaxed"
    BRANCH_ADDED = "branch-added"
    BRANCH_REMOVED = "branch-removed"
    BRANCH_AMBIGUOUS = "branch-ambiguous"
    REF_TARGET_CHANGED = "ref-target-changed"
    REF_UNRESOLVED = "ref-unresolved"
    KEYWORD_UNSUPPORTED = "keyword-unsupported"


RULES: dict[Rule, str] = {
    Rule.PROPERTY_ADDED: "the new schema declares a property the old one did not",
    Rule.PROPERTY_REMOVED: "the new schema no longer declares a property the old one declared",
    Rule.REQUIRED_ADDED: "a property became required",
    Rule.REQUIRED_REMOVED: "a property is no longer required",
    Rule.TYPE_NARROWED: "the new schema admits fewer JSON types (number → integer included)",
    Rule.TYPE_WIDENED: "the new schema admits more JSON types (integer → number included)",
    Rule.TYPE_CHANGED: "the type changed to one that neither admits all of nor is within the old",
    Rule.ENUM_VALUE_ADDED: "an enum gained a value",
    Rule.ENUM_VALUE_REMOVED: "an enum lost a value",
    Rule.ENUM_ADDED: "values are now restricted to an enum",
    Rule.ENUM_REMOVED: "values are no longer restricted to an enum",
    Rule.CONST_CHANGED: "a const changed its value",
    Rule.CONST_ADDED: "a value is now fixed by a const",
    Rule.CONST_REMOVED: "a value is no longer fixed by a const",
    Rule.ADDITIONAL_PROPERTIES_CLOSED: "undeclared properties are now forbidden (or narrowed)",
    Rule.ADDITIONAL_PROPERTIES_OPENED: "undeclared properties are now allowed",
    Rule.PATTERN_PROPERTY_ADDED: "a patternProperties entry constrains keys that were free",
    Rule.PATTERN_PROPERTY_REMOVED: "a patternProperties entry was removed",
    Rule.CONSTRAINT_TIGHTENED: "a validation keyword got stricter, was added, or changed",
    Rule.CONSTRAINT_RELAXED: "a validation keyword got looser, was removed, or changed",
    Rule.BRANCH_ADDED: "a oneOf/anyOf branch admits instances no old branch admitted",
    Rule.BRANCH_REMOVED: "a oneOf/anyOf branch is gone: its instances match no new branch",
    Rule.BRANCH_AMBIGUOUS: "an instance could match two branches of a oneOf",
    Rule.REF_TARGET_CHANGED: "a $ref points elsewhere, and the new target is incompatible",
    Rule.REF_UNRESOLVED: "a $ref cannot be resolved inside the document",
    Rule.KEYWORD_UNSUPPORTED: "a keyword Accord cannot reason about changed",
}

# Which rule of a pair is reported depends on the direction of the check: when the new schema
# must contain the old one (BACKWARD), a narrowing is the problem; when the old schema must
# contain the new one (FORWARD), a widening is.
PAIRS: dict[Rule, Rule] = {
    Rule.PROPERTY_REMOVED: Rule.PROPERTY_ADDED,
    Rule.PROPERTY_ADDED: Rule.PROPERTY_REMOVED,
    Rule.REQUIRED_ADDED: Rule.REQUIRED_REMOVED,
    Rule.TYPE_NARROWED: Rule.TYPE_WIDENED,
    Rule.ENUM_VALUE_REMOVED: Rule.ENUM_VALUE_ADDED,
    Rule.ENUM_ADDED: Rule.ENUM_REMOVED,
    Rule.CONST_ADDED: Rule.CONST_REMOVED,
    Rule.ADDITIONAL_PROPERTIES_CLOSED: Rule.ADDITIONAL_PROPERTIES_OPENED,
    Rule.PATTERN_PROPERTY_ADDED: Rule.PATTERN_PROPERTY_REMOVED,
    Rule.CONSTRAINT_TIGHTENED: Rule.CONSTRAINT_RELAXED,
    Rule.BRANCH_REMOVED: Rule.BRANCH_ADDED,
}


@dataclass(frozen=True)
class Violation:
    """One reason why instances of one schema may be invalid under another.

    `pointer` is a JSON pointer into the new schema's document: where the change is, or, for
    something that was removed, where it would be.
    """

    rule: Rule
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule} at #{self.pointer}: {self.message}"
