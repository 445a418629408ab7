"""Fast exact path-dependent TreeSHAP for scikit-learn random forests.

:class:`ForestShap` gives the same SHAP values as ``shap.TreeExplainer(forest)`` with its
default ``feature_perturbation="tree_path_dependent"``, for a fitted
``RandomForestClassifier`` (or ``ExtraTreesClassifier``), in probability space: a tree's leaf
value is its share of the explained class (``tree_.value`` normalised per node), the forest's
output is the mean over trees and the expected value is the mean over trees of the root's
value. Inputs are cast to float32 and compared ``x <= threshold`` as scikit-learn does (a
missing value follows the node's ``missing_go_to_left``, as in scikit-learn and shap).

The method
----------
For a leaf with value v, let F be the distinct features on its root path (n = |F|). For j in F,
z_j is the product over j's splits on the path of the cover ratio child / parent
(``tree_.weighted_n_node_samples``), and o_j(x) is 1 when x meets all of j's conditions on the
path, else 0. The leaf's part of feature i's path-dependent SHAP value is exactly (Fast
TreeSHAP, Yang 2021, arXiv:2109.09847)::

    v (o_i - z_i) sum over S in F - {i} of w(|S|) prod_{j in S} o_j prod_{j in F - S - {i}} z_j
    with w(s) = s! (n - s - 1)! / n!

and a feature's SHAP value is the sum of these parts over the leaves whose path uses it.
Leaves of value 0 (pure leaves of the other class) add nothing: they are dropped, with any
subtree that holds only such leaves. Explaining rows walks each tree once, carrying down the
nodes the bit mask A of the path features x meets (B: the others); rows go through the trees
a block at a time, the inner loops running over the rows of the block. A leaf's parts then come
one of two ways.

Table (Fast TreeSHAP v2, with one table of 2^n floats instead of n of them). As o is 0 or 1,
with P(A) = prod_{j in B} z_j and g(A) = sum_{t=0..|A|} w(|A| - t) e_t(z_A) (e_t: elementary
symmetric polynomial of the z of A), the sum collapses to::

    i in B:  - v P(A) g(A)  =  U(A)              (z_i cancels: the same for every i in B)
    i in A:    v (1 - z_i) P(A) g(A - {i})  =  c_i U(A - {i}),  c_i = -(1 - z_i) / z_i

since P(A - {i}) = z_i P(A). The table U over the 2^n subsets, filled by recursions over
subsets in O(2^n n) when the explainer is built, costs one look-up per path feature: O(n) per
leaf and row, where shap's algorithm takes O(depth^2).

Quadrature (every other leaf). As w(s) = integral_0^1 u^s (1 - u)^(n-1-s) du (a Beta integral),
the sum over S is the integral form of the Shapley value (Owen 1972)::

    v (o_i - z_i) integral_0^1 prod_{j in F - {i}} phi_j(u) du,   phi_j(u) = o_j u + (1 - u) z_j

a polynomial of degree n - 1 in u, which Gauss-Legendre quadrature with ceil(n / 2) points
u_q, weights m_q integrates exactly. With Pi(u) = prod_{j in F} phi_j(u): i in B gets
-v sum_q m_q Pi(u_q) / (1 - u_q) and i in A gets v (1 - z_i) sum_q m_q Pi(u_q) / phi_i(u_q):
n ceil(n / 2) products and as many multiply-adds per leaf and row, all of positive terms.

Memory bound. Tables go to the leaves with the fewest features first, while their total stays
within ``table_bytes`` (8 * 2^n bytes per leaf, n at most :data:`MAX_TABLE_FEATURES`, where a
table stops beating the quadrature); a leaf with a zero cover ratio gets none (c_i). Besides the
tables the explainer holds a few arrays per node and per (leaf, path feature): a few times the
forest's own size, plus a few hundred KiB of working memory per worker thread.

Exactness. Both ways compute the formula above, the path-dependent TreeSHAP value, without
approximation; results differ from shap's only by floating-point rounding (the tests require
1e-9; about 1e-16 is measured). A root-to-leaf path may hold at most 64 distinct features.

Size: One algorithm; about a third of the module is the explanation of the method above.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np

#: Default memory for the per-leaf tables (bytes); other leaves use the quadrature.
TABLE_BYTES = 64 * 2**20
#: Leaves with more distinct path features than this get no table (2^10 floats = 8 KiB). Measured
#: on the benchmark's forests, tables pay up to about 10 features; bigger ones, slowed down by
#: cache misses, are no faster than the quadrature.
MAX_TABLE_FEATURES = 10
#: Most distinct features on one root-to-leaf path (the masks are 64-bit integers).
MAX_PATH_FEATURES = 64
#: Most rows explained together, tree by tree, so that a tree's tables are read once per block.
ROW_BLOCK = 512
#: Memory for a block's per-row work arrays (bytes): about a core's L2 cache.
BLOCK_BYTES = 256 * 2**10
#: Below this many rows in a block, leaves without a table are explained row by row.
FEW_ROWS = 8
#: Fewest rows worth handing to worker threads.
MIN_PARALLEL_ROWS = 256


def _jit(**options: Any) -> Any:
    """``numba.njit`` with an on-disk cache when the package folder or a user cache is writable."""

    def decorate(function: Any) -> Any:
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError:  # no writable cache location (e.g. a read-only install)
            return numba.njit(cache=False, **options)(function)

    return decorate


def _shapley_weights(most: int) -> np.ndarray:
    """``W[n, s] = s! (n - s - 1)! / n!`` for 1 <= n <= most, 0 <= s < n (0 elsewhere)."""
    weights = np.zeros((most + 1, most + 1))
    for n in range(1, most + 1):
        for s in range(n):
            weights[n, s] = math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)
    return weights


_WEIGHTS = _shapley_weights(MAX_PATH_FEATURES)


def _gauss_legendre(most: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre points and weights on [0, 1]: row q holds the q-point rule."""
    nodes = np.zeros((most + 1, most))
    weights = np.zeros((most + 1, most))
    for q in range(1, most + 1):
        x, w = np.polynomial.legendre.leggauss(q)
        nodes[q, :q] = (x + 1.0) / 2.0
        weights[q, :q] = w / 2.0
    return nodes, weights


_GAUSS_NODES, _GAUSS_WEIGHTS = _gauss_legendre(MAX_PATH_FEATURES // 2)


@_jit(nogil=True)
def _layout(tree_start, left, right, feature, threshold, missing_left, cover, value, n_features):
    """Lay the forest out for explaining: kept nodes in pre-order, per-node and per-leaf data.

    Subtrees whose leaves all have value 0 are dropped. Raises ValueError when a child is
    numbered before its parent or a path uses more than 64 distinct features.
    """
    n_trees = tree_start.size - 1
    total = left.size
    keep = np.zeros(total, np.bool_)
    for t in range(n_trees):
        s = tree_start[t]
        for i in range(tree_start[t + 1] - 1, s - 1, -1):
            if left[i] < 0:
                keep[i] = value[i] != 0.0
            else:
                if left[i] + s <= i or right[i] + s <= i:
                    raise ValueError("expected scikit-learn's node numbering (parents first)")
                keep[i] = keep[left[i] + s] or keep[right[i] + s]
    # Pre-order of the kept nodes, tree by tree.
    original = np.empty(total, np.int64)
    parent = np.empty(total, np.int64)
    depth = np.empty(total, np.int64)
    new_start = np.zeros(n_trees + 1, np.int64)
    stack = np.empty(total + 1, np.int64)
    stack_parent = np.empty(total + 1, np.int64)
    count = 0
    for t in range(n_trees):
        s = tree_start[t]
        new_start[t] = count
        if keep[s]:
            top = 0
            stack[0] = s
            stack_parent[0] = -1
            while top >= 0:
                node = stack[top]
                up = stack_parent[top]
                top -= 1
                original[count] = node
                parent[count] = up
                depth[count] = 0 if up < 0 else depth[up] + 1
                if left[node] >= 0:
                    if keep[right[node] + s]:
                        top += 1
                        stack[top] = right[node] + s
                        stack_parent[top] = count
                    if keep[left[node] + s]:
                        top += 1
                        stack[top] = left[node] + s
                        stack_parent[top] = count
                count += 1
    new_start[n_trees] = count

    n_nodes = count
    # Mask slots: a node at depth d reads slot 2d (a left child, or the root) or 2d + 1 (a
    # right child), written by its parent. In pre-order no slot is overwritten before it is read.
    slot = np.zeros(n_nodes, np.int64)
    child_left = np.full(n_nodes, -1, np.int64)
    child_right = np.full(n_nodes, -1, np.int64)
    node_feature = np.zeros(n_nodes, np.int64)
    node_threshold = np.zeros(n_nodes)
    node_missing_left = np.zeros(n_nodes, np.bool_)
    bit = np.zeros(n_nodes, np.int64)
    newbit = np.zeros(n_nodes, np.int64)
    leaf_of = np.full(n_nodes, -1, np.int64)
    n_leaves = 0
    path_total = 0
    for k in range(n_nodes):
        if left[original[k]] < 0:
            n_leaves += 1
            path_total += min(depth[k], n_features)
    leaf_n = np.zeros(n_leaves, np.int64)
    leaf_off = np.zeros(n_leaves, np.int64)
    leaf_value = np.zeros(n_leaves)
    path_feature = np.zeros(path_total, np.int64)
    path_z = np.zeros(path_total)

    position_of = np.full(n_features, -1, np.int64)
    chain = np.empty(n_nodes + 1, np.int64)
    pos_feature = np.empty(n_features, np.int64)
    pos_z = np.empty(n_features)
    leaf = 0
    offset = 0
    for t in range(n_trees):
        s_old = tree_start[t]
        for k in range(new_start[t], new_start[t + 1]):
            up = parent[k]
            if up >= 0:
                if original[k] == left[original[up]] + s_old:
                    slot[k] = 2 * depth[k]
                    child_left[up] = slot[k]
                else:
                    slot[k] = 2 * depth[k] + 1
                    child_right[up] = slot[k]
            # The path to k, root first, and its distinct features in order of appearance.
            length = 0
            a = k
            while a >= 0:
                chain[length] = a
                length += 1
                a = parent[a]
            n_pos = 0
            for c in range(length - 1, 0, -1):
                node = original[chain[c]]
                f = feature[node]
                ratio = cover[original[chain[c - 1]]] / cover[node]
                p = position_of[f]
                if p < 0:
                    position_of[f] = n_pos
                    pos_feature[n_pos] = f
                    pos_z[n_pos] = ratio
                    n_pos += 1
                else:
                    pos_z[p] *= ratio
            node = original[k]
            if left[node] >= 0:
                f = feature[node]
                p = position_of[f]
                if p < 0:
                    p = n_pos
                    if p >= 64:
                        raise ValueError("a path uses more than 64 distinct features")
                    newbit[k] = np.int64(1) << p
                bit[k] = np.int64(1) << p
                node_feature[k] = f
                node_threshold[k] = threshold[node]
                node_missing_left[k] = missing_left[node]
            else:
                leaf_of[k] = leaf
                leaf_n[leaf] = n_pos
                leaf_off[leaf] = offset
                leaf_value[leaf] = value[node]
                for p in range(n_pos):
                    path_feature[offset + p] = pos_feature[p]
                    path_z[offset + p] = pos_z[p]
                offset += n_pos
                leaf += 1
            for p in range(n_pos):
                position_of[pos_feature[p]] = -1
    spare = 0  # the slot that takes a dropped child's mask: one no node reads
    for k in range(n_nodes):
        spare = max(spare, 2 * depth[k] + 2)
    for k in range(n_nodes):
        if child_left[k] < 0:
            child_left[k] = spare
        if child_right[k] < 0:
            child_right[k] = spare
    return (
        new_start,
        slot,
        child_left,
        child_right,
        node_feature,
        node_threshold,
        node_missing_left,
        bit,
        newbit,
        leaf_of,
        leaf_n,
        leaf_off,
        leaf_value,
        path_feature[:offset].copy(),
        path_z[:offset].copy(),
    )


@_jit(nogil=True)
def _fill_tables(leaves, leaf_n, leaf_off, leaf_value, path_z, leaf_table, weights, tables):
    """Fill ``tables[leaf_table[L] + A] = U(A) = -v P(A) g(A)`` for each listed leaf L."""
    most = 0
    for leaf in leaves:
        most = max(most, leaf_n[leaf])
    size = np.int64(1) << most
    poly = np.zeros((size, most + 2))  # e_t(z_A) for every subset A
    z_product = np.ones(size)  # prod_{j in A} z_j
    count = np.zeros(size, np.int64)  # |A|
    for leaf in leaves:
        n = leaf_n[leaf]
        off = leaf_off[leaf]
        start = leaf_table[leaf]
        v = leaf_value[leaf]
        full = (np.int64(1) << n) - 1
        poly[0, 0] = 1.0
        poly[0, 1] = 0.0
        for subset in range(1, full + 1):
            low = subset & -subset
            k = 0
            while (np.int64(1) << k) != low:
                k += 1
            rest = subset ^ low
            a = count[rest] + 1
            count[subset] = a
            z = path_z[off + k]
            z_product[subset] = z_product[rest] * z
            poly[subset, 0] = 1.0
            for t in range(1, a + 1):
                poly[subset, t] = poly[rest, t] + z * poly[rest, t - 1]
            poly[subset, a + 1] = 0.0
        for subset in range(full + 1):
            a = count[subset]
            g = 0.0
            for t in range(a + 1):
                g += weights[n, a - t] * poly[subset, t]
            tables[start + subset] = -v * z_product[full ^ subset] * g


@_jit(nogil=True)
def _explain_rows(
    X,
    start,
    stop,
    out,
    node_start,
    slot,
    child_left,
    child_right,
    feature,
    threshold,
    missing_left,
    bit,
    newbit,
    leaf_of,
    leaf_n,
    leaf_off,
    leaf_value,
    leaf_table,
    path_feature,
    path_z,
    path_c,
    tables,
    gauss_nodes,
    gauss_weights,
    block,
):
    """Write the SHAP values of rows ``start:stop`` of X to the same rows of ``out``.

    Rows go ``block`` at a time through the trees' nodes in pre-order; the inner loops run over
    the rows of the block (independent of each other), so a tree's tables are read once per
    block. ``slot`` says which row of ``mask`` holds a node's masks, written by its parent.
    """
    n_features = X.shape[1]
    block = max(1, min(block, stop - start))
    n_slots = 1
    for i in range(child_left.size):
        n_slots = max(n_slots, child_left[i] + 1, child_right[i] + 1)
    mask = np.zeros((n_slots, block), np.int64)
    xt = np.empty((n_features, block), np.float32)
    acc = np.zeros((n_features, block))
    unmet = np.empty(block)
    met = np.empty(block)
    product = np.empty((MAX_PATH_FEATURES // 2, block))
    single = np.empty(MAX_PATH_FEATURES // 2)
    for b0 in range(start, stop, block):
        rows = min(block, stop - b0)
        for r in range(rows):
            for f in range(n_features):
                xt[f, r] = X[b0 + r, f]
                acc[f, r] = 0.0
        for t in range(node_start.size - 1):
            root = mask[0]
            for r in range(rows):
                root[r] = 0
            for i in range(node_start[t], node_start[t + 1]):
                masks = mask[slot[i]]
                leaf = leaf_of[i]
                if leaf < 0:
                    # A split: the children's masks of the path features x meets.
                    to_left = mask[child_left[i]]
                    to_right = mask[child_right[i]]
                    xs = xt[feature[i]]
                    cut = threshold[i]
                    missing_goes_left = missing_left[i]
                    clear = ~bit[i]
                    new = newbit[i]
                    for r in range(rows):
                        m = masks[r] | new
                        x = xs[r]
                        # (x <= cut) is False for NaN, not (x > cut) is True.
                        go_left = (x <= cut) | (missing_goes_left & (not x > cut))
                        to_left[r] = m if go_left else m & clear
                        to_right[r] = m & clear if go_left else m
                    continue
                n = leaf_n[leaf]
                off = leaf_off[leaf]
                at = leaf_table[leaf]
                if at >= 0:
                    # One look-up for the unmet features, one per met feature.
                    for r in range(rows):
                        unmet[r] = tables[at + masks[r]]
                    for k in range(n):
                        one = np.int64(1) << k
                        c = path_c[off + k]
                        into = acc[path_feature[off + k]]
                        for r in range(rows):
                            m = masks[r]
                            part = c * tables[at + (m ^ one)]
                            into[r] += part if m & one else unmet[r]
                    continue
                if n == 0:
                    continue
                # No table: Gauss-Legendre quadrature of the integral form, exact for the
                # polynomial of degree n - 1 with ceil(n / 2) points, for all rows at once.
                points = (n + 1) // 2
                u = gauss_nodes[points]
                weights = gauss_weights[points]
                if rows < FEW_ROWS:
                    # Row by row, and only the met features' sums: the same arithmetic as
                    # below, without a loop over the rows around each step.
                    for r in range(rows):
                        m = masks[r]
                        for p in range(points):
                            single[p] = leaf_value[leaf]
                        for k in range(n):
                            z = path_z[off + k]
                            o = 1.0 if m & (np.int64(1) << k) else 0.0
                            for p in range(points):
                                single[p] *= (1.0 - u[p]) * z + o * u[p]
                        zero_part = 0.0
                        for p in range(points):
                            zero_part -= weights[p] / (1.0 - u[p]) * single[p]
                        for k in range(n):
                            if m & (np.int64(1) << k):
                                z = path_z[off + k]
                                total = 0.0
                                for p in range(points):
                                    factor = weights[p] * (1.0 - z) / (u[p] + (1.0 - u[p]) * z)
                                    total += factor * single[p]
                                acc[path_feature[off + k], r] += total
                            else:
                                acc[path_feature[off + k], r] += zero_part
                    continue
                for p in range(points):
                    row = product[p]
                    for r in range(rows):
                        row[r] = leaf_value[leaf]
                for k in range(n):
                    z = path_z[off + k]
                    one = np.int64(1) << k
                    for r in range(rows):
                        met[r] = 1.0 if masks[r] & one else 0.0
                    for p in range(points):
                        row = product[p]
                        base = (1.0 - u[p]) * z
                        at_met = u[p]
                        for r in range(rows):
                            row[r] *= base + met[r] * at_met
                for r in range(rows):
                    unmet[r] = 0.0
                for p in range(points):
                    row = product[p]
                    factor = weights[p] / (1.0 - u[p])
                    for r in range(rows):
                        unmet[r] -= factor * row[r]
                for k in range(n):
                    z = path_z[off + k]
                    one = np.int64(1) << k
                    for r in range(rows):
                        met[r] = 0.0
                    for p in range(points):
                        row = product[p]
                        factor = weights[p] * (1.0 - z) / (u[p] + (1.0 - u[p]) * z)
                        for r in range(rows):
                            met[r] += factor * row[r]
                    into = acc[path_feature[off + k]]
                    for r in range(rows):
                        into[r] += met[r] if masks[r] & one else unmet[r]
        for r in range(rows):
            for f in range(n_features):
                out[b0 + r, f] = acc[f, r]


def _table_leaves(budget: int, leaf_n: np.ndarray, path_z: np.ndarray) -> np.ndarray:
    """Which leaves get a table: the fewest path features first, within ``budget`` bytes.

    A leaf with a zero cover ratio on its path gets none (c_i would divide by zero).
    """
    zero_ratio = np.zeros(leaf_n.size, dtype=bool)
    owner = np.repeat(np.arange(leaf_n.size), leaf_n)
    zero_ratio[owner[path_z[: owner.size] <= 0.0]] = True
    order = np.argsort(leaf_n, kind="stable")
    order = order[(leaf_n[order] <= MAX_TABLE_FEATURES) & ~zero_ratio[order]]
    order = order[np.cumsum(8 * (np.int64(1) << leaf_n[order])) <= budget]
    chosen = np.zeros(leaf_n.size, dtype=bool)
    chosen[order] = True
    return chosen


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ForestShap:
    """Exact path-dependent TreeSHAP values of a fitted scikit-learn forest classifier.

    Same values as ``shap.TreeExplainer(forest).shap_values(X)[..., class_index]`` (default
    ``feature_perturbation="tree_path_dependent"``), computed by the method in the module's
    docstring.

    Args:
        forest: a fitted ``RandomForestClassifier`` or ``ExtraTreesClassifier`` (one output).
        class_index: the class whose probability is explained (1: the positive class).
        table_bytes: memory for the per-leaf tables; the other leaves use the quadrature (same
            values). 0: no tables.
        n_threads: worker threads for many rows (default: the CPUs this process may use).

    Attributes:
        expected_value: the forest's average output (mean over trees of the root's value).
        n_features_in: columns expected in X.
        n_threads: worker threads used for :data:`MIN_PARALLEL_ROWS` rows or more.
        n_leaves: leaves kept (leaves of value 0 add nothing and are dropped).
        n_table_leaves: leaves with a table; ``table_nbytes`` their memory.

    Raises:
        TypeError: not a fitted single-output forest classifier.
        ValueError: a root-to-leaf path holds more than 64 distinct features.
    """

    def __init__(
        self,
        forest: Any,
        class_index: int = 1,
        table_bytes: int = TABLE_BYTES,
        n_threads: int | None = None,
    ) -> None:
        found = [getattr(e, "tree_", None) for e in getattr(forest, "estimators_", [])]
        if not found or any(t is None for t in found) or not hasattr(forest, "classes_"):
            raise TypeError("ForestShap needs a fitted scikit-learn forest classifier.")
        trees = [t for t in found if t is not None]
        if getattr(forest, "n_outputs_", 1) != 1:
            raise TypeError("ForestShap explains single-output forests only.")
        if not 0 <= class_index < len(forest.classes_):
            raise ValueError(f"class_index {class_index} is not a class of this forest.")
        self.n_features_in = int(forest.n_features_in_)
        self.n_threads = n_threads or _default_threads()
        scaling = 1.0 / len(trees)
        sizes = np.array([t.node_count for t in trees], dtype=np.int64)
        values = []
        for tree in trees:
            value = tree.value[:, 0, :]
            values.append(value[:, class_index] / value.sum(axis=1) * scaling)
        self.expected_value = float(sum(v[0] for v in values))
        (
            self._node_start,
            self._slot,
            self._child_left,
            self._child_right,
            self._feature,
            self._threshold,
            self._missing_left,
            self._bit,
            self._newbit,
            self._leaf_of,
            self._leaf_n,
            self._leaf_off,
            self._leaf_value,
            self._path_feature,
            self._path_z,
        ) = _layout(
            np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            np.concatenate([t.children_left for t in trees]).astype(np.int64),
            np.concatenate([t.children_right for t in trees]).astype(np.int64),
            np.concatenate([t.feature for t in trees]).astype(np.int64),
            np.concatenate([t.threshold for t in trees]).astype(np.float64),
            np.concatenate(
                [getattr(t, "missing_go_to_left", np.zeros(t.node_count, np.uint8)) for t in trees]
            ).astype(np.bool_),
            np.concatenate([t.weighted_n_node_samples for t in trees]).astype(np.float64),
            np.concatenate(values),
            self.n_features_in,
        )
        with np.errstate(divide="ignore"):
            self._path_c = -(1.0 - self._path_z) / self._path_z
        self.n_leaves = int(self._leaf_n.size)
        chosen = _table_leaves(int(table_bytes), self._leaf_n, self._path_z)
        self.n_table_leaves = int(chosen.sum())
        # Leaves are numbered in pre-order, so each tree's tables are contiguous.
        sizes = np.where(chosen, np.int64(1) << self._leaf_n, 0)
        self._leaf_table = np.where(chosen, np.cumsum(sizes) - sizes, -1).astype(np.int64)
        self._tables = np.zeros(int(sizes.sum()), dtype=np.float64)
        if self.n_table_leaves:
            _fill_tables(
                np.flatnonzero(chosen),
                self._leaf_n,
                self._leaf_off,
                self._leaf_value,
                self._path_z,
                self._leaf_table,
                _WEIGHTS,
                self._tables,
            )
        # Rows per block: the block's masks and sums (8 bytes per row each) within ~256 KiB.
        n_slots = int(max(self._child_left.max(initial=0), self._child_right.max(initial=0))) + 1
        per_row = 8 * (n_slots + self.n_features_in)
        self._block = int(min(ROW_BLOCK, max(16, BLOCK_BYTES // per_row)))

    @property
    def work_per_row(self) -> int:
        """Operations per explained row, roughly: a look-up per path feature for a leaf with a
        table, n * ceil(n / 2) products for a leaf without, plus one step per tree node. The
        time of a row is proportional to it (``benchmarks/bench_shap.py`` prints both)."""
        n = self._leaf_n
        table = self._leaf_table >= 0
        quadrature = n * ((n + 1) // 2)
        return int(np.where(table, n, quadrature).sum() + self._child_left.size)

    @property
    def table_nbytes(self) -> int:
        """Memory held by the per-leaf tables (bytes)."""
        return int(self._tables.nbytes)

    def _run(self, X: np.ndarray, start: int, stop: int, out: np.ndarray) -> None:
        _explain_rows(
            X,
            start,
            stop,
            out,
            self._node_start,
            self._slot,
            self._child_left,
            self._child_right,
            self._feature,
            self._threshold,
            self._missing_left,
            self._bit,
            self._newbit,
            self._leaf_of,
            self._leaf_n,
            self._leaf_off,
            self._leaf_value,
            self._leaf_table,
            self._path_feature,
            self._path_z,
            self._path_c,
            self._tables,
            _GAUSS_NODES,
            _GAUSS_WEIGHTS,
            self._block,
        )

    def shap_values(self, X: Any) -> np.ndarray:
        """SHAP values, one row per row of X and one column per feature (float64).

        ``expected_value + shap_values(X).sum(axis=1)`` is the forest's probability of the
        explained class, up to floating-point rounding.
        """
        X = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
        if X.ndim != 2 or X.shape[1] != self.n_features_in:
            raise ValueError(
                f"X must have shape (rows, {self.n_features_in}); got {tuple(X.shape)}."
            )
        rows = X.shape[0]
        out = np.zeros((rows, self.n_features_in), dtype=np.float64)
        threads = min(self.n_threads, max(1, rows // (MIN_PARALLEL_ROWS // 2)))
        if rows < MIN_PARALLEL_ROWS or threads == 1:
            if rows:
                self._run(X, 0, rows, out)
            return out
        # Several chunks per thread (on a shared machine one thread may be held up), each a
        # whole number of blocks.
        step = self._block * -(-rows // (4 * threads * self._block))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            jobs = [
                pool.submit(self._run, X, begin, min(begin + step, rows), out)
                for begin in range(0, rows, step)
            ]
            for job in jobs:
                job.result()
        return out
