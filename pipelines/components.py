"""Connected components of a large graph in Beam: alternating large-star / small-star rounds.

Kiveris, Lattanzi, Mirrokni, Rastogi, Vassilvitskii, "Connected Components in MapReduce
and Beyond" (SoCC 2014). Each round is two GroupByKeys over the edge set; a round never
needs a whole component in one place, and the nodes' own labels (here: strings whose order
is the survivor order) make the result deterministic. The fixed point of the alternation is
a set of stars, each centered on the minimum node of its component; the paper proves
O(log^2 n) rounds and observes ~log n in practice. Near-duplicate graphs built from LSH
buckets are already "almost stars" (every bucket emits a star to its minimum), so they
converge in 2-3 rounds (measured in benchmarks/RESULTS.md).

Why not union-find for everything: it needs every edge in one worker (unbounded at 1B
documents). Why a bounded number of rounds rather than "loop until a counter says nothing
changed": Beam graphs are static, and a driver-side loop would relaunch a Dataflow job
(minutes each) per round. So: ``rounds`` unrolled rounds, then an exact finish. A node is
in star form when it is a leaf with one parent or a center with no parent; the edges that
still touch a node not in star form (the *residual*, counted as ``cc_residual_edges`` /
``cc_unconverged_nodes`` in stats.json) go through a union-find in one combiner, whose
roots (a side input) relabel those nodes and the leaves hanging off them. Correctness does
not depend on the number of rounds; memory does: the residual must fit one worker, which
the rounds guarantee in practice (it shrinks geometrically per round; measured in
docs/dedup.md), and the stage logs an ALARM when it is large.

Memory: every step iterates a node's neighbour list twice (min, then emit) and keeps no
list, so on Dataflow (lazily paged GroupByKey iterables) memory does not grow with degree.
Edges are ``(node, parent)`` pairs of strings with ``parent < node``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

Edge = tuple[str, str]
NAMESPACE = "dedup"


def large_star(item: tuple[str, Iterable[str]]) -> Iterator[Edge]:
    """Node u with all its neighbours: link every larger neighbour to min(neighbours + u)."""
    u, neighbours = item
    m = min(min(neighbours), u)
    for v in neighbours:
        if v > u:
            yield v, m


def small_star(item: tuple[str, Iterable[str]]) -> Iterator[Edge]:
    """Node u with its smaller neighbours: link u and each of them to their minimum."""
    u, smaller = item
    m = min(min(smaller), u)
    if u != m:
        yield u, m
    for v in smaller:
        if v != m:
            yield v, m


def _both_directions(edge: Edge) -> Iterator[Edge]:
    yield edge
    yield edge[1], edge[0]


class StarRound(beam.PTransform):
    """One large-star + small-star round; edges in, edges out (``(node, smaller)``, distinct).

    Duplicate edges out of large-star only repeat small-star's output, so one Distinct per
    round (after small-star) keeps the edge set from growing.
    """

    def expand(self, edges):
        large = (edges
                 | "Undirect" >> beam.FlatMap(_both_directions)
                 | "Group neighbours" >> beam.GroupByKey()
                 | "Large star" >> beam.FlatMap(large_star))
        return (large
                | "Group smaller" >> beam.GroupByKey()
                | "Small star" >> beam.FlatMap(small_star)
                | "Distinct small" >> beam.Distinct())


def classify_node(item: tuple[str, Iterable[tuple[str, str]]]) -> Iterator:
    """After the rounds, per node: its provisional label and, if not in star form, its edges.

    Main output ``(node, smallest parent)`` for every node with a parent. A node is converged
    when it is a star leaf (one parent, no children) or a star center (children, no parent);
    every edge touching an unconverged node goes to the ``residual`` output.
    """
    node, tagged = item
    parents, children = 0, 0
    best = None
    for tag, other in tagged:
        if tag == "p":
            parents += 1
            best = other if best is None or other < best else best
        else:
            children += 1
    if parents and (parents > 1 or children):
        Metrics.counter(NAMESPACE, "cc_unconverged_nodes").inc()
        yield beam.pvalue.TaggedOutput("unconverged", node)
        for tag, other in tagged:
            yield beam.pvalue.TaggedOutput("residual", (node, other) if tag == "p" else (other, node))
    if best is not None:
        yield node, best


class UnionFind(beam.CombineFn):
    """Edges -> {node: min node of its component}; used only on the small residual edge set."""

    def create_accumulator(self) -> dict[str, str]:
        return {}

    @staticmethod
    def _find(parent: dict[str, str], x: str) -> str:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def _union(self, parent: dict[str, str], a: str, b: str) -> None:
        ra, rb = self._find(parent, a), self._find(parent, b)
        if ra != rb:
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            parent[hi] = lo
            parent.setdefault(lo, lo)

    def add_input(self, parent, edge):
        self._union(parent, edge[0], edge[1])
        return parent

    def merge_accumulators(self, accumulators):
        merged: dict[str, str] = {}
        for acc in accumulators:
            for node, par in acc.items():
                self._union(merged, node, par)
        return merged

    def extract_output(self, parent):
        return {node: self._find(parent, node) for node in list(parent)}


def resolve_label(edge: Edge, roots: dict[str, str]) -> Iterator[Edge]:
    """A provisional (node, parent) label made final with the residual components' roots."""
    node, parent = edge
    if node not in roots:
        yield node, roots.get(parent, parent)


def _residual_labels(roots: dict[str, str]) -> Iterator[Edge]:
    for node, root in sorted(roots.items()):
        if node != root:
            yield node, root


def _tag_ends(edge: Edge) -> Iterator[tuple[str, tuple[str, str]]]:
    node, parent = edge
    yield node, ("p", parent)
    yield parent, ("c", node)


class ConnectedComponents(beam.PTransform):
    """Undirected edges ``(a, b)`` -> ``(node, root)`` for every non-root node of every component.

    ``rounds`` large-star/small-star rounds, then an exact finish: the edges still touching
    an unconverged node (outputs ``residual`` and ``unconverged``, counted in the stats) are
    joined by a union-find in one combiner and their roots broadcast as a side input. The
    residual is empty or tiny once the rounds have done their work (measured: docs/dedup.md);
    ``root`` is always the minimum node of the component.
    """

    def __init__(self, rounds: int):
        super().__init__()
        if rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {rounds}")
        self.rounds = rounds

    def expand(self, edges):
        current = (edges
                   | "Orient" >> beam.Map(lambda e: (e, e[::-1])[e[1] > e[0]])
                   | "Drop loops" >> beam.Filter(lambda e: e[0] != e[1]))
        for i in range(self.rounds):
            current = current | f"Round {i + 1}" >> StarRound()
        nodes = (current
                 | "Tag ends" >> beam.FlatMap(_tag_ends)
                 | "Group ends" >> beam.GroupByKey()
                 | "Classify" >> beam.FlatMap(classify_node).with_output_types(Any).with_outputs(
                     "unconverged", "residual", main="labels"))
        roots = nodes.residual | "Union-find residual" >> beam.CombineGlobally(UnionFind())
        final = nodes.labels | "Resolve" >> beam.FlatMap(resolve_label, beam.pvalue.AsSingleton(roots))
        extra = roots | "Residual labels" >> beam.FlatMap(_residual_labels)
        labels = (final, extra) | "All labels" >> beam.Flatten()
        return {"labels": labels, "unconverged": nodes.unconverged, "residual": nodes.residual}
