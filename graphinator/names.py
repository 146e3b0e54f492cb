"""The name a placeholder takes from the references to it. Pure: Cypher fragments only.

A fresh load names a placeholder (an Artist or Label something references but whose own
record is not in the graph) with the smallest name the references to it give. So that an
update can do the same when references go away, each reference edge keeps the name its
reference gave the node it points at, and the placeholder's name is recomputed from the
edges left (:func:`smallest_name`). A two-sided edge is stated by either end, each
naming the *other* end, so it keeps one name per side, set and removed with that side's
flag (docs/graph-model.md, "Relationships").
"""

from __future__ import annotations

# A one-sided reference edge (BY, CREDITED_ON, ON, ALIAS_OF) keeps the name as ``name``;
# masters' references and tags carry none. The sides of the two-sided edges, by kind of
# reference (graphinator.rows' ``e[1]``): the flag of the record stating the edge, and
# the name that record gives the other end.
SIDE: dict[str, tuple[str, str]] = {
    "member": ("from_members", "member_name"),  # the group's record names the member
    "group": ("from_groups", "group_name"),  # the member's record names the group
    "parent": ("from_parent_label", "parent_name"),  # the sub's record names the parent
    "sublabel": ("from_sublabels", "sublabel_name"),  # the parent's record names the sub
}

# Where the names of a node's references are, seen from the node: the arrow's two halves,
# the edge types, the property naming this end.
_NAMED_BY = (
    ("<-", "-", "BY|ON|ALIAS_OF", "name"),
    ("-", "->", "CREDITED_ON", "name"),
    ("-", "->", "MEMBER_OF", "member_name"),
    ("<-", "-", "MEMBER_OF", "group_name"),
    ("-", "->", "SUBLABEL_OF", "sublabel_name"),
    ("<-", "-", "SUBLABEL_OF", "parent_name"),
)
_VARS = frozenset({"t", "n"})


def smallest_name(var: str) -> str:
    """The smallest name the reference edges of node ``var`` carry (null when none): the
    name a fresh load gives a placeholder. ``var`` is a variable of the fixed statements."""
    if var not in _VARS:
        raise ValueError(f"not a fixed node variable: {var}")
    names = " + ".join(
        f"[({var}){left}[r:{types}]{right}() | r.{prop}]" for left, right, types, prop in _NAMED_BY
    )
    # reduce, not min(): an aggregate here would need a subquery per node.
    return f"reduce(m = null, x IN {names} | CASE WHEN x IS NULL OR x >= m THEN m ELSE x END)"


# Written by the links statement right after it merges a referenced node (``t``, its row
# ``row`` with the smallest name the batch's references give it). A new node is a
# placeholder with that name; an existing placeholder keeps the smaller of its name and
# the row's, so the result does not depend on arrival order, until its record completes
# it. A complete node is left as it is, unwritten: a write would lock it, and popular
# nodes locked that way by concurrent batches deadlocked on the edges a changed record's
# removal had left locked. Every placeholder a named reference touches is locked first
# (a property written and removed) and read again by a fresh match, even when the name
# read unlocked would not change: a concurrent transaction that removed the edge giving
# that name recomputes it under the same lock (RENAME), so the later of the two sees what
# the other did; read unlocked, a record completing the node concurrently also lost its
# own name. (This also finishes the MERGEs before the edges.)
PLACEHOLDER = (
    "ON CREATE SET t.placeholder = true, t.name = row.name WITH t, row "
    "WITH t, row, t.placeholder AND row.name IS NOT NULL AS named "
    "FOREACH (_ IN CASE WHEN named THEN [1] ELSE [] END | "
    "SET t.locked_ = true REMOVE t.locked_) "
    "WITH t, row, named CALL (t, row, named) { WITH t, row WHERE named "
    "MATCH (u) WHERE elementId(u) = elementId(t) AND u.placeholder "
    "AND (u.name IS NULL OR row.name < u.name) SET u.name = row.name } "
)

# The former targets of removed edges (element ids) left as placeholders, named from the
# references left; run after ORPHANS, under ORPHANS_LOCK's lock (graphinator.cypher).
RENAME = (
    "UNWIND $rows AS row MATCH (t) WHERE elementId(t) = row.id "
    f"AND t.placeholder AND (t:Artist OR t:Label) SET t.name = {smallest_name('t')}"
)
