"""The name a placeholder takes from the references to it. Pure: Cypher fragments only.

A fresh load names a placeholder (an Artist or Label something references but whose own
record is not in the graph) with the smallest name the references to it give. So that an
update can do the same when references go away, each reference edge keeps the name its
reference gave the node it points at, and :data:`RENAME` names the placeholders where
references went away (a changed record's removed edges, a purged or deleted record's) and
the nodes a purge or delete demoted from the edges left. A two-sided edge is stated by
either end, each naming the *other* end, so it keeps one name per side, set and removed
with that side's flag (docs/graph-model.md, "Relationships").
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
# The links statement's clause for each of them (``o`` the record's node, ``t`` the other).
MERGE_SIDE: dict[str, str] = {
    "member": "MERGE (t)-[r:MEMBER_OF]->(o) SET r.from_members = true, r.member_name = e[3]",
    "group": "MERGE (o)-[r:MEMBER_OF]->(t) SET r.from_groups = true, r.group_name = e[3]",
    "parent": "MERGE (o)-[r:SUBLABEL_OF]->(t) SET r.from_parent_label = true, r.parent_name = e[3]",
    "sublabel": "MERGE (t)-[r:SUBLABEL_OF]->(o) "
    "SET r.from_sublabels = true, r.sublabel_name = e[3]",
}

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

# The former targets of removed edges and the nodes a purge or delete demoted (element
# ids) that are placeholders, named with the smallest name on their reference edges (null
# when none), as a fresh load names them: each edge type names the end its references
# point at, a two-sided edge each end by its own property. A name is always the smallest
# on the edges (a reference added lowers it), so a placeholder that still has an edge
# with its name keeps it: that is checked first, stopping at the first such edge, and
# only the others' edges are all read (on a popular placeholder, reading them all on
# every removal cost 85,000 db hits per 40 changed releases in bench.graph_statements).
# reduce, not min(): an aggregate would need a subquery per node. Run after ORPHANS,
# under ORPHANS_LOCK's lock (graphinator.cypher); written out whole, nothing formatted in.
RENAME = (
    "UNWIND $rows AS row MATCH (t) WHERE elementId(t) = row.id "
    "AND t.placeholder AND (t:Artist OR t:Label) "
    "AND NOT EXISTS { (t)<-[r:BY|ON|ALIAS_OF]-() WHERE r.name = t.name } "
    "AND NOT EXISTS { (t)-[r:CREDITED_ON]->() WHERE r.name = t.name } "
    "AND NOT EXISTS { (t)-[r:MEMBER_OF]->() WHERE r.member_name = t.name } "
    "AND NOT EXISTS { (t)<-[r:MEMBER_OF]-() WHERE r.group_name = t.name } "
    "AND NOT EXISTS { (t)-[r:SUBLABEL_OF]->() WHERE r.sublabel_name = t.name } "
    "AND NOT EXISTS { (t)<-[r:SUBLABEL_OF]-() WHERE r.parent_name = t.name } "
    "SET t.name = reduce(m = null, x IN "
    "[(t)<-[r:BY|ON|ALIAS_OF]-() | r.name] + [(t)-[r:CREDITED_ON]->() | r.name] "
    "+ [(t)-[r:MEMBER_OF]->() | r.member_name] + [(t)<-[r:MEMBER_OF]-() | r.group_name] "
    "+ [(t)-[r:SUBLABEL_OF]->() | r.sublabel_name] "
    "+ [(t)<-[r:SUBLABEL_OF]-() | r.parent_name] "
    "| CASE WHEN x IS NULL OR x >= m THEN m ELSE x END)"
)
