"""Is every instance of schema A an instance of schema B? A structural, conservative answer.

`subset_violations(a, b)` walks the two schemas side by side and returns the reasons it could
not prove `instances(A) ⊆ instances(B)`. No violations is a proof (up to the keywords
documented in docs/compatibility.md); a violation is either a real counter-example (a type
removed, a property made required) or a change Accord cannot reason about (a pattern
rewritten), reported because it cannot be proven safe.

Two readings of "instances" are offered:

- tolerant (the default): A describes what a *writer* puts in a message, B what a *reader*
  accepts. A writer sends the properties its record schemas declare and no others, unless
  the schema says otherwise (an explicit `additionalProperties` or `patternProperties`, or an
  object schema that declares no properties at all, i.e. a free-form map). A reader accepts
  undeclared properties unless its schema forbids them.
- strict (`strict=True`): the plain JSON Schema meaning, where an object schema without
  `additionalProperties` admits any undeclared property with any value.

Local `$ref`s (`#/...`) are resolved in each schema's own document; recursion is handled by
assuming, while a pair of `$ref` targets is being compared, that it is compatible (the
greatest fixed point, which is the right answer for recursive types).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from harness.authoring.contracts import join, lookup, split
from harness.evolution.rules import PAIRS, Rule, Violation


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ANNOTATIONS = _words(
    """title description default examples example deprecated readOnly writeOnly $comment
    $schema $id $anchor $dynamicAnchor $vocabulary $defs definitions contentEncoding
    contentMediaType contentSchema discriminator xml externalDocs"""
)
OBJECT_KEYWORDS = _words(
    """properties required additionalProperties patternProperties minProperties maxProperties
    propertyNames dependentRequired dependentSchemas unevaluatedProperties"""
)
ARRAY_KEYWORDS = _words(
    """items prefixItems additionalItems minItems maxItems uniqueItems contains minContains
    maxContains unevaluatedItems"""
)
NUMBER_KEYWORDS = _words("minimum maximum exclusiveMinimum exclusiveMaximum multipleOf")
STRING_KEYWORDS = _words("minLength maxLength pattern format")
GENERIC_KEYWORDS = _words("type enum const allOf anyOf oneOf not if then else $ref")
OPENAPI_KEYWORDS = frozenset({"nullable"})
KNOWN = (
    OBJECT_KEYWORDS
    | ARRAY_KEYWORDS
    | NUMBER_KEYWORDS
    | STRING_KEYWORDS
    | GENERIC_KEYWORDS
    | OPENAPI_KEYWORDS
)
ALL_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string"})
UNIVERSAL_PATTERNS = frozenset({"", ".*", "^.*$", "^.*", ".*$"})
MAX_DEPTH = 200


class _UnresolvedRefError(Exception):
    def __init__(self, ref: str) -> None:
        super().__init__(ref)
        self.ref = ref


@dataclass(frozen=True)
class Node:
    """A schema, the document its `$ref`s resolve in, and its location in that document."""

    schema: Any
    root: Any
    loc: str

    def child(self, schema: Any, *tokens: str | int) -> Node:
        return Node(schema, self.root, join(self.loc, *tokens))

    def at(self, schema: Any, loc: str) -> Node:
        return Node(schema, self.root, loc)


@dataclass(frozen=True)
class _Context:
    assumed: frozenset[tuple[str, str]] = frozenset()
    writer_closed: bool = True
    depth: int = 0

    def deeper(self) -> _Context:
        return replace(self, depth=self.depth + 1)


@dataclass(frozen=True)
class _ObjectPair:
    """The object keywords of A and B that the object passes share."""

    a_props: dict[str, Any]
    b_props: dict[str, Any]
    a_patterns: dict[str, Any]
    b_patterns: dict[str, Any]
    a_required: set[str]
    b_required: set[str]
    a_extra: Any
    b_extra: Any
    writer_open: bool

    @classmethod
    def of(cls, sa: Any, sb: Any, *, strict: bool, ctx: _Context) -> _ObjectPair:
        """Read the object keywords of both schemas, with their defaults."""
        a_props: dict[str, Any] = sa.get("properties") or {}
        a_patterns: dict[str, Any] = sa.get("patternProperties") or {}
        a_extra = sa.get("additionalProperties", True)
        # May the writer send properties it does not name? (see the module docstring)
        writer_open = (
            strict
            or not ctx.writer_closed
            or "additionalProperties" in sa
            or not (a_props or a_patterns)
        ) and a_extra is not False
        return cls(
            a_props=a_props,
            b_props=sb.get("properties") or {},
            a_patterns=a_patterns,
            b_patterns=sb.get("patternProperties") or {},
            a_required=set(sa.get("required") or []),
            b_required=set(sb.get("required") or []),
            a_extra=a_extra,
            b_extra=sb.get("additionalProperties", True),
            writer_open=writer_open,
        )


@dataclass
class _Checker:
    sup_is_new: bool
    strict: bool

    # --- reporting --------------------------------------------------------------------------

    def violation(self, rule: Rule, a_loc: str, b_loc: str, message: str) -> Violation:
        """A violation named for the direction of this check, located in the new schema."""
        if self.sup_is_new:
            return Violation(rule, b_loc, message)
        return Violation(PAIRS.get(rule, rule), a_loc, message)

    def old_new(self, a: Any, b: Any) -> tuple[Any, Any]:
        return (a, b) if self.sup_is_new else (b, a)

    # --- entry ------------------------------------------------------------------------------

    def sub(self, a: Node, b: Node, ctx: _Context) -> list[Violation]:
        if ctx.depth > MAX_DEPTH:
            return [
                self.violation(
                    Rule.KEYWORD_UNSUPPORTED, a.loc, b.loc, "schemas nest too deeply to compare"
                )
            ]
        ctx = ctx.deeper()
        a_ref, b_ref = _ref_of(a.schema), _ref_of(b.schema)
        if a_ref is not None or b_ref is not None:
            return self._sub_refs(a, b, a_ref, b_ref, ctx)
        return self._sub_resolved(a, b, ctx)

    def _sub_refs(
        self, a: Node, b: Node, a_ref: str | None, b_ref: str | None, ctx: _Context
    ) -> list[Violation]:
        try:
            a_target = _deref(a) if a_ref is not None else a
        except _UnresolvedRefError as error:
            return [self._unresolved(a, b, error.ref, side_is_a=True)]
        try:
            b_target = _deref(b) if b_ref is not None else b
        except _UnresolvedRefError as error:
            return [self._unresolved(a, b, error.ref, side_is_a=False)]
        key = (a_target.loc if a_ref else f"@{a.loc}", b_target.loc if b_ref else f"@{b.loc}")
        if key in ctx.assumed:
            return []
        inner = self.sub(a_target, b_target, replace(ctx, assumed=ctx.assumed | {key}))
        if a_ref is None or b_ref is None or a_target.loc == b_target.loc or not inner:
            return inner
        old, new = self.old_new(a_ref, b_ref)
        first = inner[0]
        more = f" (and {len(inner) - 1} more)" if len(inner) > 1 else ""
        return [
            self.violation(
                Rule.REF_TARGET_CHANGED,
                a.loc,
                b.loc,
                f"$ref changed from {old} to {new}, and the schemas differ: "
                f"{first.rule} at #{first.pointer}: {first.message}{more}",
            )
        ]

    def _unresolved(self, a: Node, b: Node, ref: str, *, side_is_a: bool) -> Violation:
        old_side = side_is_a == self.sup_is_new
        which = "old" if old_side else "new"
        return self.violation(
            Rule.REF_UNRESOLVED,
            a.loc,
            b.loc,
            f"$ref {ref} in the {which} schema cannot be resolved in its document "
            "(only local #/... references are followed), so compatibility cannot be proven",
        )

    # --- after $ref -------------------------------------------------------------------------

    def _sub_resolved(self, a: Node, b: Node, ctx: _Context) -> list[Violation]:
        sa, sb = a.schema, b.schema
        if sa is False or _unconstrained(sb):
            return []
        if sb is False:
            old, new = self.old_new("some instances", "nothing")
            return [
                self.violation(
                    Rule.TYPE_NARROWED, a.loc, b.loc, f"old admits {old}, new admits {new}"
                )
            ]
        if sa is True:
            sa = {}
        if not isinstance(sa, dict) or not isinstance(sb, dict):
            return [
                self.violation(
                    Rule.KEYWORD_UNSUPPORTED, a.loc, b.loc, "a schema is neither object nor boolean"
                )
            ]
        a = a.at(_flatten(a.at(sa, a.loc)), a.loc)
        b = b.at(_flatten(b), b.loc)
        sa, sb = a.schema, b.schema

        values = _finite_values(sa)
        if values is not None:
            return self._sub_finite(a, b, values)

        a_kind = _disjunction(sa)
        if a_kind is not None:
            return self._sub_a_disjunction(a, b, a_kind, ctx)
        b_kind = _disjunction(sb)
        if b_kind is not None:
            return self._sub_b_disjunction(a, b, b_kind, ctx)
        # What allOf could not be merged: B's members must each admit A, except those that are
        # also members of A (A is within them by construction).
        a_members = sa.get("allOf") if isinstance(sa.get("allOf"), list) else []
        b_members = sb.get("allOf") if isinstance(sb.get("allOf"), list) else []
        shared = {_canonical(member) for member in a_members}
        out: list[Violation] = []
        for index, member in enumerate(b_members):
            if _canonical(member) not in shared:
                out += self.sub(a, b.child(member, "allOf", index), ctx)
        b_base = b.at({k: v for k, v in sb.items() if k != "allOf"}, b.loc)
        if a_members:
            return out + self._sub_a_conjunction(a, b_base, ctx)
        return out + self._sub_base(a, b_base, ctx)

    # --- finite instance sets: decided exactly by validation --------------------------------

    def _sub_finite(self, a: Node, b: Node, values: list[Any]) -> list[Violation]:
        own = _validator(a)
        target = _validator(b)
        out: list[Violation] = []
        for value in values:
            if not own.is_valid(value):
                continue  # the old schema's own keywords already exclude this value
            errors = sorted(target.iter_errors(value), key=lambda e: len(list(e.path)))
            if not errors:
                continue
            error = errors[0]
            keyword = str(error.validator)
            rule = _rule_for_keyword(keyword, a.schema, b.schema)
            b_loc = join(b.loc, *[str(t) for t in error.relative_schema_path])
            a_loc = join(a.loc, "const" if "const" in a.schema else "enum")
            shown = json.dumps(value)
            if self.sup_is_new:
                message = (
                    f"the old value {shown} is not valid under the new schema: {error.message}"
                )
            else:
                message = (
                    f"the new value {shown} is not valid under the old schema: {error.message}"
                )
            out.append(self.violation(rule, a_loc, b_loc, message))
        return out

    # --- oneOf / anyOf ----------------------------------------------------------------------

    def _sub_a_disjunction(self, a: Node, b: Node, kind: str, ctx: _Context) -> list[Violation]:
        sa = a.schema
        a_base = {k: v for k, v in sa.items() if k != kind}
        branches = [
            a.child(_merge(a_base, _plain(a.child(branch, kind, i))), kind, i)
            for i, branch in enumerate(sa[kind])
        ]
        b_kind = _disjunction(b.schema)
        if b_kind is None:
            out: list[Violation] = []
            for branch in branches:
                out += self.sub(branch, b, ctx)
            return out

        b_base = b.at({k: v for k, v in b.schema.items() if k != b_kind}, b.loc)
        base_check = self.sub(a.at(a_base, a.loc), b_base, ctx)
        if base_check:
            per_branch = [v for branch in branches for v in self.sub(branch, b_base, ctx)]
            base_check = per_branch if len(per_branch) < len(base_check) else base_check
        out = list(base_check)
        b_branches = [b.child(s, b_kind, j) for j, s in enumerate(b.schema[b_kind])]
        a_raw = [_canonical(branch) for branch in sa[kind]]
        b_raw = [_canonical(candidate.schema) for candidate in b_branches]
        for i, branch in enumerate(branches):
            trials = [self.sub(branch, candidate, ctx) for candidate in b_branches]
            # Among equally good matches prefer the identical branch, then the same position:
            # the exclusivity argument below relies on matching a branch to its twin.
            best = (
                min(
                    range(len(trials)),
                    key=lambda j: (len(trials[j]), b_raw[j] != a_raw[i], j != i, j),
                )
                if trials
                else None
            )
            if best is None or trials[best]:
                out += self._branch_missing(a, b, kind, b_kind, i, best, trials, len(sa[kind]))
                continue
            if b_kind == "oneOf":
                for k, other in enumerate(b_branches):
                    if k == best:
                        continue
                    exclusive = kind == "oneOf" and any(
                        a_raw[m] == b_raw[k] for m in range(len(a_raw)) if m != i
                    )
                    if not exclusive and not _disjoint(branch, other, 0):
                        out.append(self._ambiguous(branch, other, b_kind, k, best))
        return out

    def _branch_missing(
        self,
        a: Node,
        b: Node,
        kind: str,
        b_kind: str,
        i: int,
        best: int | None,
        trials: list[list[Violation]],
        a_count: int,
    ) -> list[Violation]:
        if best is not None and best == i and len(trials) == a_count:
            return trials[best]  # the same branch, changed: report what changed in it
        closest = ""
        if best is not None and trials[best]:
            first = trials[best][0]
            closest = f"; closest is branch {best}: {first.rule} at #{first.pointer}"
        if self.sup_is_new:
            message = f"old {kind} branch {i} admits instances that no new {b_kind} branch admits"
        else:
            message = f"new {kind} branch {i} admits instances that no old {b_kind} branch admits"
        return [
            self.violation(
                Rule.BRANCH_REMOVED, join(a.loc, kind, i), join(b.loc, b_kind), message + closest
            )
        ]

    def _ambiguous(self, branch: Node, other: Node, kind: str, k: int, j: int) -> Violation:
        side = "old" if self.sup_is_new else "new"
        return self.violation(
            Rule.BRANCH_AMBIGUOUS,
            branch.loc,
            other.loc,
            f"an {side} instance matching branch {j} of the {kind} may also match branch {k}, "
            "and oneOf requires exactly one match (Accord cannot prove the branches disjoint)",
        )

    def _sub_b_disjunction(self, a: Node, b: Node, kind: str, ctx: _Context) -> list[Violation]:
        b_base = b.at({k: v for k, v in b.schema.items() if k != kind}, b.loc)
        out = self.sub(a, b_base, ctx)
        branches = [b.child(s, kind, j) for j, s in enumerate(b.schema[kind])]
        trials = [self.sub(a, branch, ctx) for branch in branches]
        if not trials:
            return out
        best = min(range(len(trials)), key=lambda j: len(trials[j]))
        if trials[best]:
            return out + trials[best]
        if kind == "oneOf":
            for k, other in enumerate(branches):
                if k != best and not _disjoint(a, other, 0):
                    out.append(self._ambiguous(a, other, kind, k, best))
        return out

    def _sub_a_conjunction(self, a: Node, b: Node, ctx: _Context) -> list[Violation]:
        # What allOf could not be merged: A ⊆ B when any one conjunct is. Each conjunct alone
        # does not list every property a writer sends, so writers are read as open here.
        open_ctx = replace(ctx, writer_closed=False)
        base = a.at({k: v for k, v in a.schema.items() if k != "allOf"}, a.loc)
        attempts = [self.sub(base, b, open_ctx)]
        for index, member in enumerate(a.schema["allOf"]):
            if not attempts[-1]:
                return []
            attempts.append(self.sub(a.child(member, "allOf", index), b, open_ctx))
        return min(attempts, key=len)

    # --- one schema against another, keyword by keyword -------------------------------------

    def _sub_base(self, a: Node, b: Node, ctx: _Context) -> list[Violation]:
        sa, sb = a.schema, b.schema
        out: list[Violation] = []
        a_types, b_types = _types(sa), _types(sb)
        missing = sorted(t for t in a_types if not _type_covered(t, b_types))
        if missing:
            old, new = self.old_new(_show_types(a_types), _show_types(b_types))
            # Neither side admits all the other's types (string → integer): one change, named
            # the same from both directions, so that a FULL check reports it once.
            swapped = any(not _type_covered(t, a_types) for t in b_types)
            out.append(
                self.violation(
                    Rule.TYPE_CHANGED if swapped else Rule.TYPE_NARROWED,
                    join(a.loc, "type"),
                    join(b.loc, "type"),
                    f"type changed from {old} to {new}"
                    if swapped
                    else f"type narrowed: old admits {old}, new admits {new}",
                )
            )
        if "const" in sb:
            old, new = self.old_new("any value", json.dumps(sb["const"]))
            out.append(
                self.violation(
                    Rule.CONST_ADDED,
                    a.loc,
                    join(b.loc, "const"),
                    f"old admits {old} here, new only {new}",
                )
            )
        elif "enum" in sb:
            old, new = self.old_new("any value", f"the enum {json.dumps(sb['enum'])}")
            out.append(
                self.violation(
                    Rule.ENUM_ADDED, a.loc, join(b.loc, "enum"), f"old admits {old}, new {new}"
                )
            )
        shared = {t for t in a_types if _type_covered(t, b_types)}
        if "object" in shared:
            out += self._sub_object(a, b, ctx)
        if "array" in shared:
            out += self._sub_array(a, b, ctx)
        if shared & {"number", "integer"}:
            out += self._sub_number(a, b, integer_only=not ({"number"} & shared))
        if "string" in shared:
            out += self._sub_string(a, b)
        out += self._sub_not(a, b)
        for keyword in ("if", "then", "else"):
            out += self._same_or_report(a, b, keyword, Rule.CONSTRAINT_TIGHTENED)
        for keyword in sorted(set(sb) - KNOWN - ANNOTATIONS):
            if keyword.startswith("x-"):
                continue
            out += self._same_or_report(a, b, keyword, Rule.KEYWORD_UNSUPPORTED)
        return out

    def _same_or_report(self, a: Node, b: Node, keyword: str, rule: Rule) -> list[Violation]:
        if keyword not in b.schema:
            return []
        if keyword in a.schema and _canonical(a.schema[keyword]) == _canonical(b.schema[keyword]):
            return []
        change = "changed" if keyword in a.schema else "added"
        if not self.sup_is_new:
            change = "changed" if keyword in a.schema else "removed"
        return [
            self.violation(
                rule,
                join(a.loc, keyword),
                join(b.loc, keyword),
                f"{keyword} {change}; Accord cannot prove the new schema compatible",
            )
        ]

    def _sub_not(self, a: Node, b: Node) -> list[Violation]:
        if "not" not in b.schema:
            return []
        if "not" in a.schema and _canonical(a.schema["not"]) == _canonical(b.schema["not"]):
            return []
        if _disjoint(a, b.child(b.schema["not"], "not"), 0):
            return []
        return [
            self.violation(
                Rule.CONSTRAINT_TIGHTENED,
                join(a.loc, "not"),
                join(b.loc, "not"),
                "a `not` constraint was added or changed and may exclude instances",
            )
        ]

    def _bound(
        self, a: Node, b: Node, keyword: str, a_value: Any, b_value: Any, *, lower: bool
    ) -> list[Violation]:
        if b_value is None:
            return []
        if a_value is not None and (a_value >= b_value if lower else a_value <= b_value):
            return []
        old, new = self.old_new(a_value, b_value)
        return [
            self.violation(
                Rule.CONSTRAINT_TIGHTENED,
                join(a.loc, keyword),
                join(b.loc, keyword),
                f"{keyword} {_change_word(old, new)}: old {_show(old)}, new {_show(new)}",
            )
        ]

    def _sub_string(self, a: Node, b: Node) -> list[Violation]:
        sa, sb = a.schema, b.schema
        out = self._bound(
            a, b, "minLength", sa.get("minLength", 0), sb.get("minLength"), lower=True
        )
        out += self._bound(a, b, "maxLength", sa.get("maxLength"), sb.get("maxLength"), lower=False)
        pattern = sb.get("pattern")
        if (
            pattern is not None
            and pattern not in UNIVERSAL_PATTERNS
            and sa.get("pattern") != pattern
        ):
            old, new = self.old_new(sa.get("pattern"), pattern)
            out.append(
                self.violation(
                    Rule.CONSTRAINT_TIGHTENED,
                    join(a.loc, "pattern"),
                    join(b.loc, "pattern"),
                    f"pattern {_change_word(old, new)} (old {_show(old)}, new {_show(new)}); "
                    "Accord does not compare regular expressions, so it cannot prove that every "
                    "string one admits the other admits too",
                )
            )
        fmt = sb.get("format")
        if fmt is not None and sa.get("format") != fmt:
            old, new = self.old_new(sa.get("format"), fmt)
            out.append(
                self.violation(
                    Rule.CONSTRAINT_TIGHTENED,
                    join(a.loc, "format"),
                    join(b.loc, "format"),
                    f"format {_change_word(old, new)}: old {_show(old)}, new {_show(new)}",
                )
            )
        return out

    def _sub_number(self, a: Node, b: Node, *, integer_only: bool) -> list[Violation]:
        sa, sb = a.schema, b.schema
        out: list[Violation] = []
        for lower in (True, False):
            a_bound = _number_bound(sa, lower=lower, integer=integer_only)
            b_bound = _number_bound(sb, lower=lower, integer=integer_only)
            if b_bound is None or (a_bound is not None and _bound_within(a_bound, b_bound, lower)):
                continue
            a_keyword = a_bound[2] if a_bound is not None else b_bound[2]
            old, new = self.old_new(a_bound, b_bound)
            out.append(
                self.violation(
                    Rule.CONSTRAINT_TIGHTENED,
                    join(a.loc, a_keyword),
                    join(b.loc, b_bound[2]),
                    f"{'lower' if lower else 'upper'} bound {_change_word(old, new)}: "
                    f"old {_show_bound(old)}, new {_show_bound(new)}",
                )
            )
        multiple = sb.get("multipleOf")
        if multiple is not None and not _divides(multiple, sa.get("multipleOf"), integer_only):
            old, new = self.old_new(sa.get("multipleOf"), multiple)
            out.append(
                self.violation(
                    Rule.CONSTRAINT_TIGHTENED,
                    join(a.loc, "multipleOf"),
                    join(b.loc, "multipleOf"),
                    f"multipleOf changed: old {_show(old)}, new {_show(new)}",
                )
            )
        return out

    def _sub_array(self, a: Node, b: Node, ctx: _Context) -> list[Violation]:
        sa, sb = a.schema, b.schema
        a_prefix, a_items = _array_shape(sa)
        b_prefix, b_items = _array_shape(sb)
        a_max = sa.get("maxItems")
        if a_items is False and (a_max is None or a_max > len(a_prefix)):
            a_max = len(a_prefix)
        out: list[Violation] = []
        for index in range(max(len(a_prefix), len(b_prefix))):
            if a_max is not None and index >= a_max:
                break
            a_item = (
                a.child(a_prefix[index], "prefixItems", index)
                if index < len(a_prefix)
                else a.child(a_items, "items")
            )
            b_item = (
                b.child(b_prefix[index], "prefixItems", index)
                if index < len(b_prefix)
                else b.child(b_items, "items")
            )
            out += self.sub(a_item, b_item, ctx)
        if a_max is None or a_max > max(len(a_prefix), len(b_prefix)):
            out += self.sub(a.child(a_items, "items"), b.child(b_items, "items"), ctx)
        out += self._bound(a, b, "minItems", sa.get("minItems", 0), sb.get("minItems"), lower=True)
        out += self._bound(a, b, "maxItems", a_max, sb.get("maxItems"), lower=False)
        if sb.get("uniqueItems") is True and sa.get("uniqueItems") is not True:
            out.append(
                self.violation(
                    Rule.CONSTRAINT_TIGHTENED,
                    join(a.loc, "uniqueItems"),
                    join(b.loc, "uniqueItems"),
                    "uniqueItems " + ("added" if self.sup_is_new else "removed"),
                )
            )
        for keyword in ("contains", "minContains", "maxContains", "unevaluatedItems"):
            out += self._same_or_report(a, b, keyword, Rule.CONSTRAINT_TIGHTENED)
        return out

    def _sub_object(self, a: Node, b: Node, ctx: _Context) -> list[Violation]:
        """Object keywords of A against B, pass by pass."""
        pair = _ObjectPair.of(a.schema, b.schema, strict=self.strict, ctx=ctx)
        out = self._sub_required(a, b, pair)
        out += self._sub_old_properties(a, b, pair, ctx)
        out += self._sub_new_properties(a, b, pair, ctx)
        out += self._sub_old_patterns(a, b, pair, ctx)
        out += self._sub_new_patterns(a, b, pair, ctx)
        out += self._sub_additional(a, b, pair, ctx)
        out += self._sub_property_counts(a, b, pair)
        out += self._sub_dependent_required(a, b, pair.a_required)
        out += self._sub_property_names(
            a, b, pair.a_props, pair.writer_open or bool(pair.a_patterns), ctx
        )
        for keyword in ("dependentSchemas", "unevaluatedProperties"):
            out += self._same_or_report(a, b, keyword, Rule.CONSTRAINT_TIGHTENED)
        return out

    def _sub_required(self, a: Node, b: Node, pair: _ObjectPair) -> list[Violation]:
        """`required`: names B requires that A does not."""
        out: list[Violation] = []
        for name in sorted(pair.b_required - pair.a_required):
            if self.sup_is_new:
                message = f"{name!r} is required by the new schema, and old instances may omit it"
            else:
                message = f"{name!r} is no longer required, and old readers require it"
            out.append(
                self.violation(
                    Rule.REQUIRED_ADDED, join(a.loc, "required"), join(b.loc, "required"), message
                )
            )
        return out

    def _sub_old_properties(
        self, a: Node, b: Node, pair: _ObjectPair, ctx: _Context
    ) -> list[Violation]:
        """`properties` of A: each against B's property, matching patterns or extra schema."""
        out: list[Violation] = []
        for name, a_schema in pair.a_props.items():
            if a_schema is not False:
                out += self._sub_old_property(a, b, pair, name, a_schema, ctx)
        return out

    def _sub_old_property(
        self, a: Node, b: Node, pair: _ObjectPair, name: str, a_schema: Any, ctx: _Context
    ) -> list[Violation]:
        """One property of A: where B puts it (properties, patternProperties, or the rest)."""
        a_child = a.child(a_schema, "properties", name)
        if name in pair.b_props:
            return self.sub(a_child, b.child(pair.b_props[name], "properties", name), ctx)
        b_patterns = pair.b_patterns
        matching = [p for p in b_patterns if _matches(p, name)]
        out: list[Violation] = []
        for pattern in matching:
            out += self.sub(
                a_child, b.child(b_patterns[pattern], "patternProperties", pattern), ctx
            )
        b_extra = pair.b_extra
        if matching or _unconstrained(b_extra):
            return out
        if b_extra is False:
            if self.sup_is_new:
                message = (
                    f"{name!r} was removed and the new schema forbids undeclared "
                    "properties, so old instances that have it are rejected"
                )
            else:
                message = (
                    f"{name!r} was added but the old schema forbids undeclared "
                    "properties, so old readers reject new instances that have it"
                )
            b_where = join(b.loc, "properties", name)
            out.append(self.violation(Rule.PROPERTY_REMOVED, a_child.loc, b_where, message))
            return out
        out += self.sub(a_child, b.child(b_extra, "additionalProperties"), ctx)
        return out

    def _sub_new_properties(
        self, a: Node, b: Node, pair: _ObjectPair, ctx: _Context
    ) -> list[Violation]:
        """`properties` only B declares: what A's writers may already send under that name."""
        out: list[Violation] = []
        for name, b_schema in pair.b_props.items():
            if name in pair.a_props:
                continue
            found = self._sub_new_property(a, b, pair, name, b_schema, ctx)
            if found is not None:
                out.append(found)
        return out

    def _sub_new_property(
        self, a: Node, b: Node, pair: _ObjectPair, name: str, b_schema: Any, ctx: _Context
    ) -> Violation | None:
        """One property only B declares: the first of A's sources it does not admit."""
        a_patterns = pair.a_patterns
        a_sources = [
            a.child(a_patterns[p], "patternProperties", p) for p in a_patterns if _matches(p, name)
        ]
        if not a_sources and pair.writer_open:
            a_sources = [a.child(pair.a_extra, "additionalProperties")]
        for source in a_sources:
            inner = self.sub(source, b.child(b_schema, "properties", name), ctx)
            if not inner:
                continue
            first = inner[0]
            if self.sup_is_new:
                message = (
                    f"{name!r} was added with constraints, but the old schema admitted any "
                    f"value for it ({first.rule}: {first.message})"
                )
            else:
                message = (
                    f"{name!r} was removed, so new instances may carry any value for it, "
                    f"which old readers reject ({first.rule}: {first.message})"
                )
            return self.violation(
                Rule.PROPERTY_ADDED,
                join(a.loc, "properties", name),
                join(b.loc, "properties", name),
                message,
            )
        return None

    def _sub_old_patterns(
        self, a: Node, b: Node, pair: _ObjectPair, ctx: _Context
    ) -> list[Violation]:
        """`patternProperties` of A: each against B's same pattern or B's extra schema."""
        out: list[Violation] = []
        b_patterns, b_extra = pair.b_patterns, pair.b_extra
        for pattern, a_schema in pair.a_patterns.items():
            a_child = a.child(a_schema, "patternProperties", pattern)
            if pattern in b_patterns:
                out += self.sub(
                    a_child, b.child(b_patterns[pattern], "patternProperties", pattern), ctx
                )
            elif b_extra is False:
                out.append(
                    self.violation(
                        Rule.PATTERN_PROPERTY_REMOVED,
                        a_child.loc,
                        join(b.loc, "patternProperties"),
                        f"patternProperties {pattern!r} is gone and undeclared properties are "
                        "forbidden, so instances with matching keys are rejected",
                    )
                )
            elif not _unconstrained(b_extra):
                out += self.sub(a_child, b.child(b_extra, "additionalProperties"), ctx)
        return out

    def _sub_new_patterns(
        self, a: Node, b: Node, pair: _ObjectPair, ctx: _Context
    ) -> list[Violation]:
        """`patternProperties` only B declares: keys A left free that B now constrains."""
        out: list[Violation] = []
        for pattern, b_schema in pair.b_patterns.items():
            if pattern in pair.a_patterns:
                continue
            sources = [a.child(s, "patternProperties", p) for p, s in pair.a_patterns.items()]
            if pair.writer_open:
                sources.append(a.child(pair.a_extra, "additionalProperties"))
            for source in sources:
                inner = self.sub(source, b.child(b_schema, "patternProperties", pattern), ctx)
                if inner:
                    out.append(
                        self.violation(
                            Rule.PATTERN_PROPERTY_ADDED,
                            source.loc,
                            join(b.loc, "patternProperties", pattern),
                            f"patternProperties {pattern!r} constrains keys that were free "
                            f"({inner[0].rule}: {inner[0].message})",
                        )
                    )
                    break
        return out

    def _sub_additional(
        self, a: Node, b: Node, pair: _ObjectPair, ctx: _Context
    ) -> list[Violation]:
        """`additionalProperties`: undeclared properties A's writers may send, against B's."""
        b_extra = pair.b_extra
        if not pair.writer_open or _unconstrained(b_extra):
            return []
        if b_extra is not False:
            return self.sub(
                a.child(pair.a_extra, "additionalProperties"),
                b.child(b_extra, "additionalProperties"),
                ctx,
            )
        if self.sup_is_new:
            message = "the new schema forbids undeclared properties, which the old admits"
        else:
            message = "the new schema admits undeclared properties, which the old forbids"
        return [
            self.violation(
                Rule.ADDITIONAL_PROPERTIES_CLOSED,
                join(a.loc, "additionalProperties"),
                join(b.loc, "additionalProperties"),
                message,
            )
        ]

    def _sub_property_counts(self, a: Node, b: Node, pair: _ObjectPair) -> list[Violation]:
        """`minProperties` and `maxProperties`, with A's implied bounds."""
        sa, sb = a.schema, b.schema
        a_min = max(sa.get("minProperties", 0), len(pair.a_required))
        out = self._bound(a, b, "minProperties", a_min, sb.get("minProperties"), lower=True)
        a_max = sa.get("maxProperties")
        if a_max is None and not pair.writer_open and not pair.a_patterns:
            a_max = sum(1 for s in pair.a_props.values() if s is not False)
        out += self._bound(a, b, "maxProperties", a_max, sb.get("maxProperties"), lower=False)
        return out

    def _sub_dependent_required(self, a: Node, b: Node, a_required: set[str]) -> list[Violation]:
        b_dependencies: dict[str, list[str]] = b.schema.get("dependentRequired") or {}
        a_dependencies: dict[str, list[str]] = a.schema.get("dependentRequired") or {}
        out: list[Violation] = []
        for key, needed in b_dependencies.items():
            known = a_required | set(a_dependencies.get(key, []))
            missing = sorted(set(needed) - known)
            if missing:
                out.append(
                    self.violation(
                        Rule.CONSTRAINT_TIGHTENED,
                        join(a.loc, "dependentRequired"),
                        join(b.loc, "dependentRequired", key),
                        f"when {key!r} is present, {missing} must now be too"
                        if self.sup_is_new
                        else f"old readers require {missing} when {key!r} is present",
                    )
                )
        return out

    def _sub_property_names(
        self, a: Node, b: Node, a_props: dict[str, Any], extra_keys: bool, ctx: _Context
    ) -> list[Violation]:
        if "propertyNames" not in b.schema:
            return []
        names = b.child(b.schema["propertyNames"], "propertyNames")
        validator = _validator(names)
        out: list[Violation] = []
        for name, schema in a_props.items():
            if schema is not False and not validator.is_valid(name):
                out.append(
                    self.violation(
                        Rule.CONSTRAINT_TIGHTENED,
                        join(a.loc, "properties", name),
                        names.loc,
                        f"property name {name!r} is not admitted by propertyNames",
                    )
                )
        if extra_keys:
            a_names = a.child(a.schema.get("propertyNames", {"type": "string"}), "propertyNames")
            out += self.sub(a_names, names, ctx)
        return out


# --- helpers -----------------------------------------------------------------------------------


def _ref_of(schema: Any) -> str | None:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        return str(schema["$ref"])
    return None


def _deref(node: Node) -> Node:
    """Follow `node`'s `$ref` chain in its document; sibling keywords apply alongside."""
    seen: set[str] = set()
    siblings: list[dict[str, Any]] = []
    while (ref := _ref_of(node.schema)) is not None:
        if not ref.startswith("#"):
            raise _UnresolvedRefError(ref)
        pointer = ref[1:]
        if pointer in seen:
            raise _UnresolvedRefError(ref)
        seen.add(pointer)
        rest = {
            k: v
            for k, v in node.schema.items()
            if k != "$ref" and k not in ANNOTATIONS and not k.startswith("x-")
        }
        if rest:
            siblings.append(rest)
        try:
            target = lookup(node.root, pointer)
        except (KeyError, ValueError):
            raise _UnresolvedRefError(ref) from None
        node = node.at(target, pointer)
    if siblings and isinstance(node.schema, dict | bool):
        return node.at({"allOf": [node.schema, *siblings]}, node.loc)
    return node


def _plain(node: Node) -> Any:
    """A branch with its `$ref` followed (branches are merged with their parent's keywords)."""
    try:
        return _deref(node).schema
    except _UnresolvedRefError:
        return node.schema


def _unconstrained(schema: Any) -> bool:
    if schema is True:
        return True
    return isinstance(schema, dict) and all(k in ANNOTATIONS or k.startswith("x-") for k in schema)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _types(schema: dict[str, Any]) -> frozenset[str]:
    declared = schema.get("type")
    if declared is None:
        return ALL_TYPES
    types = {declared} if isinstance(declared, str) else set(declared)
    if schema.get("nullable") is True:
        types.add("null")
    return frozenset(types)


def _type_covered(kind: str, types: frozenset[str]) -> bool:
    return kind in types or (kind == "integer" and "number" in types)


def _show_types(types: frozenset[str]) -> str:
    return "any type" if types == ALL_TYPES else " | ".join(sorted(types))


def _show(value: Any) -> str:
    return "none" if value is None else json.dumps(value)


def _show_bound(bound: Bound | None) -> str:
    if bound is None:
        return "none"
    value, exclusive, keyword = bound
    number = int(value) if value.denominator == 1 else float(value)
    return f"{'>' if keyword.endswith('inimum') else '<'}{'' if exclusive else '='} {number}"


def _change_word(old: Any, new: Any) -> str:
    if old is None:
        return "added"
    if new is None:
        return "removed"
    if isinstance(old, tuple) or not _is_number(old) or not _is_number(new):
        return "changed"
    return "raised" if new > old else "lowered"


def _finite_values(schema: dict[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    if isinstance(schema.get("enum"), list):
        return list(schema["enum"])
    return None


def _disjunction(schema: dict[str, Any]) -> str | None:
    for kind in ("oneOf", "anyOf"):
        if isinstance(schema.get(kind), list):
            return kind
    return None


def _matches(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return True  # an unreadable pattern may match: be conservative


def _array_shape(schema: dict[str, Any]) -> tuple[list[Any], Any]:
    items = schema.get("items", True)
    if isinstance(items, list):  # draft 4 tuples: items is the prefix
        return items, schema.get("additionalItems", True)
    return list(schema.get("prefixItems") or []), items


Bound = tuple[Fraction, bool, str]  # value, exclusive, the keyword it came from


def _number_bound(schema: dict[str, Any], *, lower: bool, integer: bool) -> Bound | None:
    plain, exclusive = ("minimum", "exclusiveMinimum") if lower else ("maximum", "exclusiveMaximum")
    candidates: list[Bound] = []
    if isinstance(schema.get(plain), int | float) and not isinstance(schema.get(plain), bool):
        flag = schema.get(exclusive) is True  # draft 4 / OpenAPI 3.0 boolean form
        candidates.append((Fraction(str(schema[plain])), flag, plain))
    value = schema.get(exclusive)
    if isinstance(value, int | float) and not isinstance(value, bool):
        candidates.append((Fraction(str(value)), True, exclusive))
    if not candidates:
        return None
    if integer:  # for integers, an exclusive bound is an inclusive one off by one
        candidates = [
            (
                Fraction(
                    (math.floor(v) + 1 if lower else math.ceil(v) - 1)
                    if excl
                    else (math.ceil(v) if lower else math.floor(v))
                ),
                False,
                kw,
            )
            for v, excl, kw in candidates
        ]

    def strength(bound: Bound) -> tuple[Fraction, bool]:
        value, excl, _ = bound
        return (value, excl) if lower else (-value, excl)

    return max(candidates, key=strength)


def _bound_within(a: Bound, b: Bound, lower: bool) -> bool:
    """Does A's bound lie within B's (so every number A admits satisfies B's bound)?"""
    (av, ae, _), (bv, be, _) = a, b
    if av != bv:
        return av > bv if lower else av < bv
    return ae or not be


def _divides(b_multiple: Any, a_multiple: Any, integer_only: bool) -> bool:
    try:
        b_value = Fraction(str(b_multiple))
        if integer_only and (1 / b_value).denominator == 1:
            return True
        if a_multiple is None:
            return False
        return (Fraction(str(a_multiple)) / b_value).denominator == 1
    except (ValueError, ZeroDivisionError):
        return False


def _rule_for_keyword(keyword: str, a: dict[str, Any], b: dict[str, Any]) -> Rule:
    if keyword in ("enum", "const") and "const" in a and "const" in b:
        return Rule.CONST_CHANGED
    return {
        "enum": Rule.ENUM_VALUE_REMOVED,
        "const": Rule.ENUM_VALUE_REMOVED if "enum" in a else Rule.CONST_CHANGED,
        "type": Rule.TYPE_NARROWED,
        "required": Rule.REQUIRED_ADDED,
        "additionalProperties": Rule.ADDITIONAL_PROPERTIES_CLOSED,
        "oneOf": Rule.BRANCH_REMOVED,
        "anyOf": Rule.BRANCH_REMOVED,
        "$ref": Rule.REF_TARGET_CHANGED,
    }.get(keyword, Rule.CONSTRAINT_TIGHTENED)


# --- allOf flattening --------------------------------------------------------------------------

_MIN_KEYWORDS = frozenset({"minLength", "minItems", "minProperties", "minimum", "minContains"})
_MAX_KEYWORDS = frozenset({"maxLength", "maxItems", "maxProperties", "maximum", "maxContains"})
_SHAPE_GUARDS = frozenset({"additionalProperties", "patternProperties", "unevaluatedProperties"})


def _flatten(node: Node, seen: frozenset[str] = frozenset()) -> Any:
    """`node`'s schema with its `allOf` merged in where merging is exact; the rest stays."""
    schema = node.schema
    if not isinstance(schema, dict) or not isinstance(schema.get("allOf"), list):
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for index, member in enumerate(schema["allOf"]):
        child = node.child(member, "allOf", index)
        try:
            resolved = _deref(child) if _ref_of(member) is not None else child
        except _UnresolvedRefError:
            merged.setdefault("allOf", []).append(member)
            continue
        if resolved.loc in seen:  # a recursive allOf: leave it to the $ref comparison
            merged.setdefault("allOf", []).append(member)
            continue
        target = _flatten(resolved, seen | {resolved.loc})
        if target is True:
            continue
        if not isinstance(target, dict) or _ref_of(target) is not None:
            merged.setdefault("allOf", []).append(target)
            continue
        merged = _merge(merged, target)
    return merged


def _merge(x: Any, y: Any) -> Any:
    """The intersection of two schemas as one schema; what cannot be merged goes to allOf."""
    if y is True or x is False:
        return x
    if x is True or y is False:
        return y
    if not isinstance(x, dict) or not isinstance(y, dict):
        return {"allOf": [x, y]}
    out = dict(x)
    rest: dict[str, Any] = {}
    guard = (set(x) | set(y)) & _SHAPE_GUARDS
    shape_clash = bool(guard) and bool(set(x) & OBJECT_KEYWORDS) and bool(set(y) & OBJECT_KEYWORDS)
    for key, value in y.items():
        if shape_clash and key in OBJECT_KEYWORDS - {"required"}:
            rest[key] = value
        elif key not in out:
            out[key] = value
        elif (
            _canonical(out[key]) == _canonical(value) or key in ANNOTATIONS or key.startswith("x-")
        ):
            continue
        elif key == "required":
            out[key] = list(dict.fromkeys([*out[key], *value]))
        elif key == "type":
            out[key] = sorted(_intersect_types(_types({"type": out[key]}), _types({"type": value})))
        elif key == "properties" and isinstance(value, dict):
            props = dict(out[key])
            for name, schema in value.items():
                props[name] = _merge(props[name], schema) if name in props else schema
            out[key] = props
        elif key == "enum" and isinstance(value, list):
            out[key] = [v for v in out[key] if v in value]
        elif key in _MIN_KEYWORDS and _is_number(out[key]) and _is_number(value):
            out[key] = max(out[key], value)
        elif key in _MAX_KEYWORDS and _is_number(out[key]) and _is_number(value):
            out[key] = min(out[key], value)
        elif key == "allOf" and isinstance(value, list):
            out[key] = [*out[key], *value]
        else:
            rest[key] = value
    if rest:
        out["allOf"] = [*out.get("allOf", []), rest]
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _intersect_types(a: frozenset[str], b: frozenset[str]) -> set[str]:
    both = set(a & b)
    if ("integer" in a and "number" in b) or ("number" in a and "integer" in b):
        both.add("integer")
    return both


# --- disjointness (for oneOf) ------------------------------------------------------------------


def _disjoint(x: Node, y: Node, depth: int) -> bool:
    """True when no instance can be valid under both schemas (False means "not proven")."""
    if depth > 20:
        return False
    try:
        x = _deref(x)
        y = _deref(y)
    except _UnresolvedRefError:
        return False
    sx, sy = x.schema, y.schema
    if sx is False or sy is False:
        return True
    if not isinstance(sx, dict) or not isinstance(sy, dict):
        return False
    sx, sy = _flatten(x), _flatten(y)
    for first, second, first_node, second_node in ((sx, sy, x, y), (sy, sx, y, x)):
        values = _finite_values(first)
        if values is not None:
            own, other = (
                _validator(first_node.at(first, first_node.loc)),
                _validator(second_node.at(second, second_node.loc)),
            )
            return all(not own.is_valid(v) or not other.is_valid(v) for v in values)
    if not _intersect_types(_types(sx), _types(sy)):
        return True
    if _types(sx) <= {"object"} or _types(sy) <= {"object"}:
        x_props, y_props = sx.get("properties") or {}, sy.get("properties") or {}
        for name in set(sx.get("required") or []) & set(sy.get("required") or []):
            if (
                name in x_props
                and name in y_props
                and _disjoint(
                    x.child(x_props[name], "properties", name),
                    y.child(y_props[name], "properties", name),
                    depth + 1,
                )
            ):
                return True
    return False


# --- validation of single values ---------------------------------------------------------------

_ROOT_URI = "urn:accord:root"


def _validator(node: Node) -> Any:
    """A Draft 2020-12 validator for `node`, its local `$ref`s resolved in its document."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    registry: Registry[Any] = Registry().with_resource(
        _ROOT_URI, Resource.from_contents(node.root, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        _rebase(node.schema),
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _rebase(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (
                f"{_ROOT_URI}{v}"
                if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else _rebase(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rebase(v) for v in value]
    return value


def subset_violations(
    a: Node, b: Node, *, sup_is_new: bool, strict: bool = False
) -> list[Violation]:
    """Why instances of `a` may not all be instances of `b` (empty: proven subset).

    `sup_is_new` says which of the two is the new schema (`b` when checking BACKWARD,
    `a` when checking FORWARD): it names the rules and locates the pointers.
    """
    checker = _Checker(sup_is_new=sup_is_new, strict=strict)
    found = checker.sub(a, b, _Context())
    root = b.root if sup_is_new else a.root
    return list(dict.fromkeys(replace(v, pointer=existing_pointer(root, v.pointer)) for v in found))


def existing_pointer(root: Any, pointer: str) -> str:
    """`pointer` as a path that exists in `root`: a pointer built on a schema whose `allOf`
    was merged (`.../properties/x` where `x` is declared in `.../allOf/1/properties/x`, maybe
    behind a `$ref`) is rewritten to where the keyword really is; for something removed, to
    where it would be under its parent as the parent really is."""
    if not pointer:
        return pointer
    tokens = split(pointer)

    def walk(node: Any, path: str, rest: list[str], depth: int) -> str | None:
        if not rest:
            return path
        if depth > 20:
            return None
        token = rest[0]
        if isinstance(node, dict):
            if token in node:
                return walk(node[token], join(path, token), rest[1:], depth)
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#"):
                try:
                    target = lookup(root, ref[1:])
                except (KeyError, ValueError):
                    target = None
                if target is not None:
                    found = walk(target, ref[1:], rest, depth + 1)
                    if found is not None:
                        return found
            for index, member in enumerate(node.get("allOf") or []):
                found = walk(member, join(path, "allOf", index), rest, depth + 1)
                if found is not None:
                    return found
            return None
        if isinstance(node, list) and token.isdigit() and int(token) < len(node):
            return walk(node[int(token)], join(path, token), rest[1:], depth)
        return None

    try:
        lookup(root, pointer)
        return pointer
    except (KeyError, ValueError, IndexError, TypeError):
        pass
    found = walk(root, "", tokens, 0)
    if found is not None:
        return found
    # Something removed: where it would be, under the parent as it really is.
    parent = walk(root, "", tokens[:-1], 0)
    return join(parent, tokens[-1]) if parent is not None else pointer
