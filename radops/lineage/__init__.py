"""Lineage: OpenLineage events of creations, where they are stored and sent, and the graph of a
file's lineage. Nothing is imported here: each module loads when first used."""
