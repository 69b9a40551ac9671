"""What Marquez's lineage graph (the web UI's picture) must show of a file: its creating job and
every input upstream of it, transitively, as the lake's own records say."""

from __future__ import annotations

from radops.lake import DataLake
from radops.lineage.events import radops_facet
from radops.lineage.marquez import MarquezClient, node_id


def expected_nodes(lake: DataLake, uid: str) -> set[str]:
    """The node ids Marquez's graph of ``uid`` must hold: the jobs that made it and its inputs,
    and those inputs (lake files, local files, URLs), all the way up, by the lake's records."""
    expected = {node_id("dataset", *lake.store.dataset(uid))}
    todo, seen = [uid], {uid}
    while todo:
        creation = lake.lineage.creation_of(todo.pop())
        if creation is None:
            continue
        expected.add(node_id("job", creation["job"]["namespace"], creation["job"]["name"]))
        for source in creation.get("inputs", []):  # lake files and outside inputs alike
            expected.add(node_id("dataset", source["namespace"], source["name"]))
        for parent in radops_facet(creation).get("inputs", []):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return expected


def missing_from_graph(lake: DataLake, client: MarquezClient, uid: str) -> set[str]:
    """The nodes of :func:`expected_nodes` that ``GET /lineage`` of ``uid`` lacks."""
    graph = client.lineage(node_id("dataset", *lake.store.dataset(uid)), depth=50)
    return expected_nodes(lake, uid) - {node["id"] for node in graph["graph"]}
