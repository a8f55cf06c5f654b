"""The engine never claims a compatibility that is false: for random schema pairs that the
strict reading calls compatible, every random instance of the old schema validates against
the new one (checked with jsonschema)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from harness.evolution import Mode, check

KEYS = ["a", "b", "c"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, 1.5, -2.5]),
    st.text(alphabet="xy", max_size=3),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=6,
)


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    strings = st.fixed_dictionaries(
        {"type": st.just("string")},
        optional={"minLength": st.integers(0, 2), "maxLength": st.integers(0, 3)},
    )
    numbers = st.fixed_dictionaries(
        {"type": st.sampled_from(["integer", "number"])},
        optional={
            "minimum": st.integers(-2, 2),
            "exclusiveMaximum": st.integers(-1, 3),
            "multipleOf": st.sampled_from([1, 2, 0.5]),
        },
    )
    enums = st.lists(SCALARS, min_size=1, max_size=3, unique_by=repr).map(lambda v: {"enum": v})
    types = st.lists(
        st.sampled_from(["null", "boolean", "integer", "number", "string", "array", "object"]),
        min_size=1,
        max_size=3,
        unique=True,
    ).map(lambda t: {"type": t})
    return st.one_of(strings, numbers, enums, types, st.just({}))


def _compound(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    objects = st.builds(
        lambda props, required, extra: {
            "type": "object",
            "properties": props,
            "required": [k for k in required if k in props],
            **({} if extra is None else {"additionalProperties": extra}),
        },
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
        st.lists(st.sampled_from(KEYS), max_size=2, unique=True),
        st.one_of(st.none(), st.booleans(), inner),
    )
    arrays = st.builds(
        lambda items, most: {"type": "array", "items": items, **most},
        inner,
        st.fixed_dictionaries({}, optional={"maxItems": st.integers(0, 2)}),
    )
    branches = st.lists(inner, min_size=1, max_size=3).flatmap(
        lambda bs: st.sampled_from([{"anyOf": bs}, {"oneOf": bs}, {"allOf": bs}])
    )
    return st.one_of(objects, arrays, branches)


SCHEMAS = st.recursive(_leaf(), _compound, max_leaves=5)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(SCHEMAS)
def test_every_schema_is_compatible_with_itself_in_every_mode(schema: dict[str, Any]) -> None:
    for mode in (Mode.FULL, Mode.BACKWARD, Mode.FORWARD):
        assert check(schema, schema, mode) == []
        assert check(schema, schema, mode, strict=True) == []


@SETTINGS
@given(SCHEMAS, SCHEMAS, st.lists(VALUES, min_size=1, max_size=8))
def test_a_strict_backward_verdict_never_admits_an_old_instance_the_new_schema_rejects(
    old: dict[str, Any], new: dict[str, Any], values: list[Any]
) -> None:
    if check(old, new, Mode.BACKWARD, strict=True):
        return
    old_validator, new_validator = Draft202012Validator(old), Draft202012Validator(new)
    for value in values:
        if old_validator.is_valid(value):
            assert new_validator.is_valid(value), f"{value!r} valid under old, not under new"
