"""Every compatibility rule, in every mode, plus what makes the engine trustworthy: `$ref`s,
recursion, `allOf`, `oneOf` discriminators, the strict reading, and the transitive modes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from harness.evolution import Mode, Rule, Schema, check, check_history

OBJECT_ID = {"id": {"type": "string"}}


def obj(properties: dict[str, Any], **keywords: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **keywords}


@dataclass(frozen=True)
class Case:
    """An old and a new schema, and the rule each direction reports (None: compatible)."""

    name: str
    old: Any
    new: Any
    backward: Rule | None
    forward: Rule | None

    def expected(self, mode: Mode) -> set[Rule]:
        found: set[Rule] = set()
        if mode.backward and self.backward is not None:
            found.add(self.backward)
        if mode.forward and self.forward is not None:
            found.add(self.forward)
        return found


NICKNAME = {**OBJECT_ID, "nickname": {"type": "string"}}
DEFS = {
    "UserId": {"type": "string", "format": "uuid"},
    "Email": {"type": "string", "format": "email"},
}

CASES = [
    Case(
        "property-added to a closed schema",
        obj(OBJECT_ID, additionalProperties=False),
        obj(NICKNAME, additionalProperties=False),
        None,
        Rule.PROPERTY_ADDED,
    ),
    Case(
        "property-added where old writers were explicitly open",
        obj(OBJECT_ID, additionalProperties=True),
        obj(NICKNAME, additionalProperties=True),
        Rule.PROPERTY_ADDED,
        None,
    ),
    Case("optional property added to an open schema", obj(OBJECT_ID), obj(NICKNAME), None, None),
    Case(
        "property-removed from a closed schema",
        obj(NICKNAME, additionalProperties=False),
        obj(OBJECT_ID, additionalProperties=False),
        Rule.PROPERTY_REMOVED,
        None,
    ),
    Case(
        "optional property removed from an open schema", obj(NICKNAME), obj(OBJECT_ID), None, None
    ),
    Case(
        "required-added",
        obj(NICKNAME, required=["id"]),
        obj(NICKNAME, required=["id", "nickname"]),
        Rule.REQUIRED_ADDED,
        None,
    ),
    Case(
        "required-removed",
        obj(NICKNAME, required=["id", "nickname"]),
        obj(NICKNAME, required=["id"]),
        None,
        Rule.REQUIRED_REMOVED,
    ),
    Case(
        "type-narrowed number to integer",
        {"type": "number"},
        {"type": "integer"},
        Rule.TYPE_NARROWED,
        None,
    ),
    Case(
        "type-widened to nullable",
        {"type": "string"},
        {"type": ["string", "null"]},
        None,
        Rule.TYPE_WIDENED,
    ),
    Case(
        "type-widened integer to number",
        {"type": "integer"},
        {"type": "number"},
        None,
        Rule.TYPE_WIDENED,
    ),
    Case(
        "enum-value-added",
        {"type": "string", "enum": ["active", "deactivated"]},
        {"type": "string", "enum": ["active", "deactivated", "suspended"]},
        None,
        Rule.ENUM_VALUE_ADDED,
    ),
    Case(
        "enum-value-removed",
        {"type": "string", "enum": ["active", "deactivated", "suspended"]},
        {"type": "string", "enum": ["active", "deactivated"]},
        Rule.ENUM_VALUE_REMOVED,
        None,
    ),
    Case(
        "enum-added",
        {"type": "string"},
        {"type": "string", "enum": ["email", "sms"]},
        Rule.ENUM_ADDED,
        None,
    ),
    Case(
        "enum-removed",
        {"type": "string", "enum": ["email", "sms"]},
        {"type": "string"},
        None,
        Rule.ENUM_REMOVED,
    ),
    Case(
        "const-changed",
        {"type": "string", "const": "user.created"},
        {"type": "string", "const": "user.registered"},
        Rule.CONST_CHANGED,
        Rule.CONST_CHANGED,
    ),
    Case(
        "const-added",
        {"type": "string"},
        {"type": "string", "const": "auth-service"},
        Rule.CONST_ADDED,
        None,
    ),
    Case(
        "const-removed",
        {"type": "string", "const": "auth-service"},
        {"type": "string"},
        None,
        Rule.CONST_REMOVED,
    ),
    Case(
        "additional-properties-closed",
        obj(OBJECT_ID, additionalProperties=True),
        obj(OBJECT_ID, additionalProperties=False),
        Rule.ADDITIONAL_PROPERTIES_CLOSED,
        None,
    ),
    Case(
        "additional-properties-opened",
        obj(OBJECT_ID, additionalProperties=False),
        obj(OBJECT_ID, additionalProperties=True),
        None,
        Rule.ADDITIONAL_PROPERTIES_OPENED,
    ),
    Case(
        "additionalProperties narrowed",
        {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
        {"type": "object", "additionalProperties": {"type": "string"}},
        Rule.TYPE_NARROWED,
        None,
    ),
    Case(
        "pattern-property-added",
        {"type": "object", "additionalProperties": {"type": "string"}},
        {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "patternProperties": {"^x-": {"type": "string", "maxLength": 10}},
        },
        Rule.PATTERN_PROPERTY_ADDED,
        None,
    ),
    Case(
        "pattern-property-removed",
        {
            "type": "object",
            "patternProperties": {"^x-": {"type": "string"}},
            "additionalProperties": False,
        },
        {"type": "object", "additionalProperties": False},
        Rule.PATTERN_PROPERTY_REMOVED,
        None,
    ),
    Case(
        "maxLength lowered",
        {"type": "string", "maxLength": 256},
        {"type": "string", "maxLength": 100},
        Rule.CONSTRAINT_TIGHTENED,
        None,
    ),
    Case(
        "minLength raised",
        {"type": "string", "minLength": 1},
        {"type": "string", "minLength": 16},
        Rule.CONSTRAINT_TIGHTENED,
        None,
    ),
    Case(
        "minimum relaxed",
        {"type": "integer", "minimum": 1},
        {"type": "integer", "minimum": 0},
        None,
        Rule.CONSTRAINT_RELAXED,
    ),
    Case(
        "exclusiveMaximum added",
        {"type": "number"},
        {"type": "number", "exclusiveMaximum": 100},
        Rule.CONSTRAINT_TIGHTENED,
        None,
    ),
    Case(
        "integer bounds that admit the same numbers",
        {"type": "integer", "minimum": 1, "maximum": 9},
        {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
        None,
        None,
    ),
    Case(
        "multipleOf added",
        {"type": "integer"},
        {"type": "integer", "multipleOf": 5},
        Rule.CONSTRAINT_TIGHTENED,
        None,
    ),
    Case(
        "multipleOf divides the old one",
        {"type": "number", "multipleOf": 0.5},
        {"type": "number", "multipleOf": 0.25},
        None,
        Rule.CONSTRAINT_RELAXED,
    ),
    Case(
        "pattern changed",
        {"type": "string", "pattern": "^[A-Z]{2}$"},
        {"type": "string", "pattern": "^[A-Z]{2,3}$"},
        Rule.CONSTRAINT_TIGHTENED,
        Rule.CONSTRAINT_RELAXED,
    ),
    Case(
        "format added",
        {"type": "string"},
        {"type": "string", "format": "email"},
        Rule.CONSTRAINT_TIGHTENED,
        None,
    ),
    Case(
        "format changed",
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        Rule.CONSTRAINT_TIGHTENED,
        Rule.CONSTRAINT_RELAXED,
    ),
    Case(
        "maxItems lowered",
        {"type": "array", "items": {"type": "string"}, "maxItems": 10},
        {"type": "array", "items": {"type": "string"}, "maxItems": 5},
        Rule.CONSTRAINT_TIGHTENED,
        None,
    ),
    Case(
        "minItems raised",
        {"type": "array", "items": {"type": "string"}},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
        Rule.CONSTRAINT_TIGHTENED,
        None,
    ),
    Case(
        "array items narrowed",
        {"type": "array", "items": {"type": ["string", "integer"]}},
        {"type": "array", "items": {"type": "string"}},
        Rule.TYPE_NARROWED,
        None,
    ),
    Case(
        "branch-added",
        {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
        None,
        Rule.BRANCH_ADDED,
    ),
    Case(
        "branch-removed",
        {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        Rule.BRANCH_REMOVED,
        None,
    ),
    Case(
        "branch-ambiguous",
        {"oneOf": [{"type": "string", "maxLength": 5}]},
        {"oneOf": [{"type": "string", "maxLength": 5}, {"type": "string", "format": "email"}]},
        Rule.BRANCH_AMBIGUOUS,
        Rule.BRANCH_ADDED,
    ),
    Case(
        "ref-target-changed",
        {**obj({"owner": {"$ref": "#/$defs/UserId"}}), "$defs": DEFS},
        {**obj({"owner": {"$ref": "#/$defs/Email"}}), "$defs": DEFS},
        Rule.REF_TARGET_CHANGED,
        Rule.REF_TARGET_CHANGED,
    ),
    Case(
        "ref-unresolved",
        obj({"owner": {"type": "string"}}),
        obj({"owner": {"$ref": "common.yaml#/UserId"}}),
        Rule.REF_UNRESOLVED,
        Rule.REF_UNRESOLVED,
    ),
    Case(
        "keyword-unsupported",
        obj({"card": {"type": "string"}}),
        obj({"card": {"type": "string"}}, dependencies={"card": ["billingAddress"]}),
        Rule.KEYWORD_UNSUPPORTED,
        None,
    ),
    Case(
        "if/then/else added",
        {"type": "string"},
        {"type": "string", "if": {"minLength": 3}, "then": {"maxLength": 5}},
        Rule.CONSTRAINT_TIGHTENED,
        None,
    ),
    Case("a schema that admits nothing", {"type": "string"}, False, Rule.TYPE_NARROWED, None),
    Case(
        "type-changed: string to integer, neither within the other",
        {"type": "string"},
        {"type": "integer"},
        Rule.TYPE_CHANGED,
        Rule.TYPE_CHANGED,
    ),
]

MODES = list(Mode)


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_rule_gives_its_verdict_in_each_mode(case: Case, mode: Mode) -> None:
    found = check_history([("1.0.0", case.old)], case.new, mode)

    assert {item.violation.rule for item in found} == case.expected(mode), [str(v) for v in found]


def test_every_rule_is_exercised_by_a_case() -> None:
    exercised = {rule for case in CASES for rule in (case.backward, case.forward) if rule}

    assert exercised == set(Rule)


def test_a_violation_names_the_pointer_into_the_new_schema() -> None:
    old = obj(NICKNAME, required=["id"])
    new = obj(
        {**NICKNAME, "nickname": {"type": "string", "maxLength": 3}}, required=["id", "nickname"]
    )

    found = check(old, new, Mode.BACKWARD)

    assert {(v.rule, v.pointer) for v in found} == {
        (Rule.REQUIRED_ADDED, "/required"),
        (Rule.CONSTRAINT_TIGHTENED, "/properties/nickname/maxLength"),
    }


def test_a_change_behind_a_ref_points_at_the_referenced_component() -> None:
    def document(max_length: int) -> dict[str, Any]:
        return {
            "components": {"schemas": {"Email": {"type": "string", "maxLength": max_length}}},
            "payload": obj({"email": {"$ref": "#/components/schemas/Email"}}),
        }

    old, new = document(254), document(100)
    found = check(
        Schema(old["payload"], old, "/payload"),
        Schema(new["payload"], new, "/payload"),
        Mode.BACKWARD,
    )

    assert [(v.rule, v.pointer) for v in found] == [
        (Rule.CONSTRAINT_TIGHTENED, "/components/schemas/Email/maxLength")
    ]


def test_pointing_a_ref_at_an_equivalent_renamed_component_is_compatible() -> None:
    defs = {
        "UserId": {"type": "string", "format": "uuid"},
        "Id": {"type": "string", "format": "uuid"},
    }
    old = {**obj({"owner": {"$ref": "#/$defs/UserId"}}), "$defs": defs}
    new = {**obj({"owner": {"$ref": "#/$defs/Id"}}), "$defs": defs}

    assert check(old, new, Mode.FULL) == []


def tree(label: dict[str, Any]) -> dict[str, Any]:
    return {
        "$defs": {
            "Node": obj(
                {"label": label, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}
            )
        },
        "$ref": "#/$defs/Node",
    }


def test_recursive_schemas_are_compared_and_terminate() -> None:
    assert check(tree({"type": "string"}), tree({"type": "string"}), Mode.FULL) == []


def test_a_change_deep_inside_a_recursive_schema_is_found() -> None:
    found = check(tree({"type": "string"}), tree({"type": "string", "maxLength": 3}), Mode.FULL)

    assert [(v.rule, v.pointer) for v in found] == [
        (Rule.CONSTRAINT_TIGHTENED, "/$defs/Node/properties/label/maxLength")
    ]


def test_all_of_composition_is_equivalent_to_the_inlined_schema() -> None:
    base = obj({"id": {"type": "string"}}, required=["id"])
    composed = {
        "$defs": {"Base": base},
        "allOf": [{"$ref": "#/$defs/Base"}, obj({"nickname": {"type": "string"}})],
    }
    inlined = obj(NICKNAME, required=["id"])

    assert check(composed, inlined, Mode.FULL) == []
    assert check(inlined, composed, Mode.FULL) == []


def test_a_required_property_added_through_all_of_is_found() -> None:
    old = obj(NICKNAME, required=["id"])
    new = {"allOf": [old, {"required": ["nickname"]}]}

    assert [v.rule for v in check(old, new, Mode.BACKWARD)] == [Rule.REQUIRED_ADDED]


def test_a_one_of_branch_with_a_new_discriminator_value_keeps_old_instances_unambiguous() -> None:
    def event(kind: str) -> dict[str, Any]:
        return obj({"kind": {"const": kind}, "id": {"type": "string"}}, required=["kind"])

    old = {"oneOf": [event("created"), event("deleted")]}
    new = {"oneOf": [event("created"), event("deleted"), event("renamed")]}

    assert check(old, new, Mode.BACKWARD) == []
    assert [v.rule for v in check(old, new, Mode.FORWARD)] == [Rule.BRANCH_ADDED]


def test_a_one_of_wrapping_the_old_schema_with_null_is_backward_compatible() -> None:
    old = {"type": "string", "format": "uuid"}
    new = {"oneOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}

    assert check(old, new, Mode.BACKWARD) == []


def test_a_const_is_checked_exactly_against_the_other_schemas_keywords() -> None:
    old = {"type": "string", "const": "user.created"}

    assert check(old, {"type": "string", "pattern": "^user\\."}, Mode.BACKWARD) == []
    assert [v.rule for v in check(old, {"type": "string", "maxLength": 4}, Mode.BACKWARD)] == [
        Rule.CONSTRAINT_TIGHTENED
    ]


def test_annotations_and_extensions_are_not_changes() -> None:
    old = {"type": "string", "description": "old words", "x-schema-version": "1.0.0"}
    new = {
        "type": "string",
        "description": "new words",
        "examples": ["a"],
        "x-schema-version": "1.1.0",
    }

    assert check(old, new, Mode.FULL) == []


def test_the_strict_reading_treats_an_open_schema_as_admitting_any_undeclared_property() -> None:
    old, new = obj(OBJECT_ID), obj(NICKNAME)

    assert check(old, new, Mode.BACKWARD) == []
    assert [v.rule for v in check(old, new, Mode.BACKWARD, strict=True)] == [Rule.PROPERTY_ADDED]
    assert [v.rule for v in check(new, old, Mode.FORWARD, strict=True)] == [Rule.PROPERTY_REMOVED]


def test_a_free_form_object_is_open_to_writers_even_in_the_tolerant_reading() -> None:
    old = {"type": "object"}
    new = obj({"count": {"type": "integer"}})

    assert [v.rule for v in check(old, new, Mode.BACKWARD)] == [Rule.PROPERTY_ADDED]


def test_the_repository_event_schemas_are_compatible_with_themselves_in_every_mode(
    repository: Any,
) -> None:
    from harness.authoring.contracts import Resolver
    from harness.evolution.events import event_schemas

    resolver = Resolver()
    events = event_schemas(repository.contracts_dir / "asyncapi" / "user-events.yaml", resolver)

    assert len(events) == 4
    for event in events:
        bundled = event.bundled(resolver)
        for mode in Mode:
            assert check(event.payload, event.payload, mode) == []
            assert check(bundled, event.payload, mode) == []


# --- transitive modes ---------------------------------------------------------------------------

V1 = obj(NICKNAME)
V2 = obj(OBJECT_ID)
V3 = obj({**OBJECT_ID, "nickname": {"type": "integer"}})
HISTORY = [("1.0.0", V1), ("1.1.0", V2)]


def test_each_step_of_a_removed_and_retyped_property_is_backward_compatible() -> None:
    assert check(V1, V2, Mode.BACKWARD) == []
    assert check(V2, V3, Mode.BACKWARD) == []
    assert check_history(HISTORY, V3, Mode.BACKWARD) == []


def test_backward_transitive_finds_the_retyped_property_against_the_first_version() -> None:
    found = check_history(HISTORY, V3, Mode.BACKWARD_TRANSITIVE)

    assert [(f.version, f.violation.rule, f.violation.pointer) for f in found] == [
        ("1.0.0", Rule.TYPE_CHANGED, "/properties/nickname/type")
    ]


def test_forward_transitive_finds_the_retyped_property_against_the_first_version() -> None:
    history = [("1.0.0", V3), ("1.1.0", V2)]

    assert check_history(history, V1, Mode.FORWARD) == []
    found = check_history(history, V1, Mode.FORWARD_TRANSITIVE)

    assert [(f.version, f.violation.rule) for f in found] == [("1.0.0", Rule.TYPE_CHANGED)]


def test_full_transitive_checks_both_directions_against_every_version() -> None:
    found = check_history(HISTORY, V3, Mode.FULL_TRANSITIVE)

    # string → integer is one change, reported once with one message (not "narrowed" and
    # "widened" for the two directions).
    assert [(f.version, f.violation.rule, f.violation.message) for f in found] == [
        ("1.0.0", Rule.TYPE_CHANGED, "type changed from string to integer"),
    ]
    assert check_history(HISTORY, V3, Mode.FULL) == []


def test_a_transitive_mode_reports_each_earlier_version_it_breaks() -> None:
    history = [
        ("1.0.0", {"type": "string", "maxLength": 50}),
        ("1.1.0", {"type": "string", "maxLength": 40}),
    ]

    found = check_history(history, {"type": "string", "maxLength": 30}, Mode.BACKWARD_TRANSITIVE)

    assert [f.version for f in found] == ["1.0.0", "1.1.0"]


def test_mode_names_parse_case_insensitively_and_unknown_ones_name_the_choices() -> None:
    assert Mode.parse("full-transitive") is Mode.FULL_TRANSITIVE
    with pytest.raises(ValueError, match="BACKWARD_TRANSITIVE"):
        Mode.parse("sideways")


# --- issue 17: words, pointers and the default mode ----------------------------------------------


def test_a_type_change_is_one_violation_with_one_message_in_a_full_check() -> None:
    old = obj({"sequence": {"type": "string"}})
    new = obj({"sequence": {"type": "integer"}})

    found = check(old, new, Mode.FULL)

    assert [(v.rule, v.pointer, v.message) for v in found] == [
        (Rule.TYPE_CHANGED, "/properties/sequence/type", "type changed from string to integer")
    ]


def test_a_widening_type_change_is_still_named_a_widening() -> None:
    found = check({"type": "integer"}, {"type": "number"}, Mode.FULL)

    assert [(v.rule, v.pointer) for v in found] == [(Rule.TYPE_WIDENED, "/type")]


def test_a_pointer_into_an_all_of_branch_points_at_a_path_that_exists() -> None:
    from harness.authoring.contracts import lookup

    def payload(max_length: int) -> dict[str, Any]:
        return {
            "allOf": [
                {"$ref": "#/$defs/Envelope"},
                {"type": "object", "properties": {"token": {"type": "string"}}},
            ],
            "$defs": {
                "Envelope": obj({"source": {"type": "string", "maxLength": max_length}}),
            },
        }

    old, new = payload(20), payload(10)
    new["allOf"][1]["properties"]["token"]["minLength"] = 3

    found = check(old, new, Mode.BACKWARD)

    assert {(v.rule, v.pointer) for v in found} == {
        (Rule.CONSTRAINT_TIGHTENED, "/$defs/Envelope/properties/source/maxLength"),
        (Rule.CONSTRAINT_TIGHTENED, "/allOf/1/properties/token/minLength"),
    }
    for violation in found:
        lookup(new, violation.pointer)  # raises KeyError for a path that does not exist


def test_events_default_to_full_transitive() -> None:
    from harness.evolution import DEFAULT_MODE

    assert DEFAULT_MODE is Mode.FULL_TRANSITIVE
    assert DEFAULT_MODE.backward
    assert DEFAULT_MODE.forward
    assert DEFAULT_MODE.transitive


def test_relaxing_a_bound_breaks_the_default_mode_against_every_retained_version() -> None:
    history = [
        ("1.0.0", obj({"sequence": {"type": "integer", "minimum": 1}})),
        ("1.1.0", obj({"sequence": {"type": "integer", "minimum": 1}})),
    ]
    new = obj({"sequence": {"type": "integer", "minimum": 0}})

    found = check_history(history, new, Mode.FULL_TRANSITIVE)

    assert [(f.version, f.violation.rule, f.violation.pointer) for f in found] == [
        ("1.0.0", Rule.CONSTRAINT_RELAXED, "/properties/sequence/minimum"),
        ("1.1.0", Rule.CONSTRAINT_RELAXED, "/properties/sequence/minimum"),
    ]
