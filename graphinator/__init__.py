"""graphinator: Discogs records into Neo4j with batched UNWIND Cypher."""
