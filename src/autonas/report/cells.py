"""Cells drawn as graphs (inputs c_{k-2}, c_{k-1}, intermediate nodes, concatenated output),
as inline SVG.

Graphviz's ``dot`` draws them when it is on PATH; otherwise a small layered layout written
here does, so a report never fails for lack of Graphviz. Cells are tiny DAGs (a handful of
nodes, two inputs per node), so longest-path layering plus one barycentre ordering pass is
enough for a readable picture.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from itertools import pairwise
from typing import Any

INPUTS = ("c_{k-2}", "c_{k-1}")
OUTPUT = "c_{k}"
CONCAT = ""  # the unlabelled edges from every intermediate node into the output

FILL = {"input": "#d6ecd2", "node": "#cfe3f3", "output": "#f3e7b3"}
DX, DY = 200, 72  # distance between layers and between nodes of a layer (px)
NODE_W, NODE_H, MARGIN = 64, 30, 24
LABEL_T, LABEL_H, LANE = 0.65, 16, 20  # label position along an edge, label height, lane gap


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    op: str


@dataclass
class CellGraph:
    nodes: list[str]
    kinds: dict[str, str]
    edges: list[Edge] = field(default_factory=list)

    def predecessors(self, name: str) -> list[str]:
        return [e.src for e in self.edges if e.dst == name]


def is_cell(value: Any) -> bool:
    """Whether ``value`` looks like a cell genotype: nodes of [op, input] pairs."""
    if not isinstance(value, list) or not value:
        return False
    try:
        return all(isinstance(node, list) and all(
            isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], str)
            and isinstance(e[1], int) and not isinstance(e[1], bool) and 0 <= e[1] < i + 2
            for e in node) for i, node in enumerate(value))
    except TypeError:
        return False


def cell_graph(cell: Sequence[Sequence[Sequence[Any]]]) -> CellGraph:
    """The graph of a cell genotype ``[[[op, input], ...] per node]``."""
    inner = [str(i) for i in range(len(cell))]
    states = [*INPUTS, *inner]
    graph = CellGraph(nodes=[*INPUTS, *inner, OUTPUT],
                      kinds={**dict.fromkeys(INPUTS, "input"), **dict.fromkeys(inner, "node"),
                             OUTPUT: "output"})
    for i, edges in enumerate(cell):
        for op, j in edges:
            graph.edges.append(Edge(states[int(j)], inner[i], str(op)))
    graph.edges.extend(Edge(n, OUTPUT, CONCAT) for n in inner)
    return graph


# ----------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Placed:
    layer: int
    x: float
    y: float


def layered_layout(graph: CellGraph) -> dict[str, Placed]:
    """Left-to-right layers by longest path from the inputs; order within a layer by the
    mean position of a node's predecessors (fewer crossings)."""
    layer: dict[str, int] = {}
    for name in graph.nodes:  # nodes are listed in topological order
        preds = graph.predecessors(name)
        layer[name] = 0 if graph.kinds[name] == "input" or not preds else \
            1 + max(layer[p] for p in preds)
    n_layers = max(layer.values()) + 1
    order: dict[str, float] = {}
    columns: list[list[str]] = []
    for k in range(n_layers):
        members = [n for n in graph.nodes if layer[n] == k]
        if k > 0:
            def barycentre(n: str) -> float:
                preds = [order[p] for p in graph.predecessors(n)]
                return sum(preds) / len(preds) if preds else 0.0

            members.sort(key=lambda n: (barycentre(n), graph.nodes.index(n)))
        for pos, n in enumerate(members):
            order[n] = pos - (len(members) - 1) / 2
        columns.append(members)
    tallest = max(len(c) for c in columns)
    centre = MARGIN + NODE_H / 2 + (tallest - 1) * DY / 2
    return {n: Placed(layer[n], MARGIN + NODE_W / 2 + layer[n] * DX, centre + order[n] * DY)
            for n in graph.nodes}


def _label_svg(name: str) -> str:
    """``c_{k-2}`` as c with a subscript; anything else as plain text."""
    m = re.fullmatch(r"(.+?)_\{(.+)\}", name)
    if not m:
        return escape(name)
    return (f'{escape(m.group(1))}<tspan dy="4" font-size="10">{escape(m.group(2))}</tspan>')


@dataclass
class _Route:
    edge: Edge
    points: list[tuple[float, float]]
    label_at: tuple[float, float] | None


def _routes(graph: CellGraph, pos: dict[str, Placed]) -> list[_Route]:
    """Edge paths: straight (fanned out if parallel) between neighbouring layers; edges that
    skip layers go around them, each in its own lane above or below the nodes."""
    rows: dict[int, list[float]] = {}
    for p in pos.values():
        rows.setdefault(p.layer, []).append(p.y)
    centre = (min(p.y for p in pos.values()) + max(p.y for p in pos.values())) / 2
    lanes = {"over": 0, "under": 0}
    parallel: dict[tuple[str, str], int] = {}
    routes = []
    for edge in graph.edges:
        a, b = pos[edge.src], pos[edge.dst]
        start, end = (a.x + NODE_W / 2, a.y), (b.x - NODE_W / 2, b.y)
        labelled = edge.op != CONCAT
        if b.layer - a.layer == 1:
            k = parallel.get((edge.src, edge.dst), 0)
            parallel[(edge.src, edge.dst)] = k + 1
            offset = (-1) ** k * 18 * ((k + 1) // 2)  # parallel edges fan out
            mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + offset)
            points = [start, mid, end] if offset else [start, end]
            t = LABEL_T
            label = (start[0] + t * (end[0] - start[0]),
                     start[1] + t * (end[1] - start[1]) + offset) if labelled else None
        else:
            crossed = [y for layer in range(a.layer + 1, b.layer) for y in rows.get(layer, [])]
            side = "over" if (a.y + b.y) / 2 <= centre else "under"
            lane = lanes[side]
            lanes[side] += 1
            if side == "over":
                level = min(crossed) - NODE_H / 2 - LANE * (lane + 1)
            else:
                level = max(crossed) + NODE_H / 2 + LANE * (lane + 1)
            waypoints = [(a.x + (layer - a.layer) * DX, level)
                         for layer in range(a.layer + 1, b.layer)]
            points = [start, *waypoints, end]
            label = waypoints[0] if labelled else None
        routes.append(_Route(edge, points, label))
    return routes


def _separate_labels(routes: list[_Route]) -> None:
    """Labels in the same gap between layers never overlap: push them apart vertically."""
    columns: dict[float, list[_Route]] = {}
    for r in routes:
        if r.label_at is not None:
            columns.setdefault(round(r.label_at[0]), []).append(r)
    for members in columns.values():
        members.sort(key=lambda r: r.label_at[1])  # type: ignore[index]
        for prev, cur in pairwise(members):
            x, y = cur.label_at  # type: ignore[misc]
            floor = prev.label_at[1] + LABEL_H + 1  # type: ignore[index]
            if y < floor:
                cur.label_at = (x, floor)


def _path(points: list[tuple[float, float]]) -> str:
    """A smooth curve through ``points`` (Catmull-Rom as cubic Beziers)."""
    if len(points) == 2:
        (x1, y1), (x2, y2) = points
        return f"M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}"
    d = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    ext = [points[0], *points, points[-1]]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        c1 = (p1[0] + (p2[0] - p0[0]) / 6, p1[1] + (p2[1] - p0[1]) / 6)
        c2 = (p2[0] - (p3[0] - p1[0]) / 6, p2[1] - (p3[1] - p1[1]) / 6)
        d.append(f"C{c1[0]:.1f},{c1[1]:.1f} {c2[0]:.1f},{c2[1]:.1f} {p2[0]:.1f},{p2[1]:.1f}")
    return " ".join(d)


def python_svg(graph: CellGraph, title: str = "", id_prefix: str = "cell") -> str:
    """The cell drawn with :func:`layered_layout`, as self-contained SVG markup."""
    pos = layered_layout(graph)
    routes = _routes(graph, pos)
    _separate_labels(routes)
    ys = [p.y + s * NODE_H / 2 for p in pos.values() for s in (-1, 1)]
    ys += [y for r in routes for _, y in r.points]
    ys += [r.label_at[1] + s * LABEL_H for r in routes if r.label_at for s in (-1, 1)]
    top, bottom = min(ys) - MARGIN / 2, max(ys) + MARGIN / 2
    width = max(p.x for p in pos.values()) + NODE_W / 2 + MARGIN
    height = bottom - top
    arrow = f"{id_prefix}-arrow"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cell" viewBox="0 {top:.0f} '
        f'{width:.0f} {height:.0f}" style="max-width:{width:.0f}px" role="img" '
        f'aria-label="{escape(title)}" font-family="Helvetica, Arial, sans-serif">',
        f"<title>{escape(title)}</title>",
        f'<defs><marker id="{arrow}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker>'
        "</defs>",
    ]
    labels = []
    for r in routes:
        edge = r.edge
        concat = edge.op == CONCAT
        stroke = 'stroke="#999" stroke-dasharray="4 3"' if concat else 'stroke="#555"'
        parts.append(
            f'<g class="edge" data-src="{escape(edge.src)}" data-dst="{escape(edge.dst)}" '
            f'data-op="{escape(edge.op)}"><path d="{_path(r.points)}" fill="none" {stroke} '
            f'stroke-width="1.3" marker-end="url(#{arrow})"/></g>')
        if r.label_at is not None:
            mx, my = r.label_at
            w = 7.0 * len(edge.op) + 8
            labels.append(
                f'<g class="edge-label"><rect x="{mx - w / 2:.1f}" y="{my - LABEL_H / 2:.1f}" '
                f'width="{w:.1f}" height="{LABEL_H}" rx="3" fill="white" fill-opacity="0.85"/>'
                f'<text x="{mx:.1f}" y="{my + 4:.1f}" text-anchor="middle" font-size="12" '
                f'fill="#333">{escape(edge.op)}</text></g>')
    parts.extend(labels)  # labels above every edge line
    for name in graph.nodes:
        p = pos[name]
        kind = graph.kinds[name]
        parts.append(
            f'<g class="node" data-name="{escape(name)}" data-kind="{kind}" '
            f'data-layer="{p.layer}" data-x="{p.x:.1f}" data-y="{p.y:.1f}">'
            f'<rect x="{p.x - NODE_W / 2:.1f}" y="{p.y - NODE_H / 2:.1f}" width="{NODE_W}" '
            f'height="{NODE_H}" rx="8" fill="{FILL[kind]}" stroke="#666"/>'
            f'<text x="{p.x:.1f}" y="{p.y + 4.5:.1f}" text-anchor="middle" font-size="14">'
            f"{_label_svg(name)}</text></g>")
    parts.append("</svg>")
    return "".join(parts)


# ----------------------------------------------------------------------------- graphviz


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_label(name: str) -> str:
    m = re.fullmatch(r"(.+?)_\{(.+)\}", name)
    if not m:
        return _dot_id(name)
    return f"<{escape(m.group(1))}<SUB>{escape(m.group(2))}</SUB>>"


def dot_source(graph: CellGraph, title: str = "") -> str:
    lines = [
        "digraph cell {",
        "  rankdir=LR; bgcolor=transparent; nodesep=0.3; ranksep=0.5;",
        f"  tooltip={_dot_id(title)};",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=13, '
        "height=0.4, width=0.7, color=\"#666666\"];",
        '  edge [fontname=Helvetica, fontsize=11, color="#555555"];',
    ]
    for name in graph.nodes:
        lines.append(f"  {_dot_id(name)} [label={_dot_label(name)}, "
                     f'fillcolor="{FILL[graph.kinds[name]]}"];')
    for edge in graph.edges:
        style = ' [style=dashed, color="#999999"]' if edge.op == CONCAT else \
            f" [label={_dot_id(edge.op)}]"
        lines.append(f"  {_dot_id(edge.src)} -> {_dot_id(edge.dst)}{style};")
    lines.append("  {rank=same; " + " ".join(_dot_id(n) for n in INPUTS) + ";}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_dot(source: str, id_prefix: str = "cell", dot: str | None = None) -> str | None:
    """SVG from Graphviz, or None if ``dot`` is missing or fails."""
    dot = dot or shutil.which("dot")
    if dot is None:
        return None
    try:
        proc = subprocess.run([dot, "-Tsvg"], input=source, capture_output=True, text=True,
                              timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0 or "<svg" not in proc.stdout:
        return None
    svg = proc.stdout[proc.stdout.index("<svg"):]
    head_end = svg.index(">")
    size = re.search(r'width="([\d.]+)pt"', svg[:head_end])
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    style = f' style="max-width:{float(size.group(1)) * 4 / 3:.0f}px"' if size else ""
    svg = head + f' class="cell"{style}' + svg[head_end:]
    return re.sub(r'\sid="([^"]*)"', lambda m: f' id="{id_prefix}-{m.group(1)}"', svg)


def cell_svg(cell: Sequence[Sequence[Sequence[Any]]], title: str = "",
             id_prefix: str = "cell") -> str:
    """The cell as inline SVG: Graphviz when available, the built-in layout otherwise."""
    graph = cell_graph(cell)
    return render_dot(dot_source(graph, title), id_prefix) or python_svg(graph, title,
                                                                         id_prefix)
