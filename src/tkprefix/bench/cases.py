"""Benchmark cases and sweep files.

A *case* is one decode step of attention over a batch whose sequences share prefix levels:

* ``levels``: shared prefix levels as ``(n_rows, length)``; level i holds ``n_rows`` distinct prefixes of ``length``
  tokens and sequence ``b`` uses row ``b // (batch // n_rows)`` (upstream Hydragen's convention),
* ``suffix``: tokens private to each sequence,
* one query token per sequence (``n_queries = 1``), ``q_heads`` / ``kv_heads`` heads of ``head_dim``.

A sweep file (config/sweeps/*.yaml) names a configuration and a grid::

    config: c1_system_prompt
    kind: attention            # attention | e2e
    grid:                      # cartesian product of every key
      heads: [[32, 32]]        # (q_heads, kv_heads)
      batch: [16, 32]
      prefix: [0, 1024]        # one shared level of this length (0 = none)
      suffix: [64, 512]
    # or, instead of batch/prefix: batch_prefix: [[512, 1024], [1024, 2048]]
    # or, instead of prefix: levels: [[[1, 2048], [8, 1024]]]   (a list of level lists)
    impls: [sdpa_naive, sdpa_hydragen, flashinfer_cascade, tk_hydragen]
    graph: [false, true]
    reps: 30

A grid may also list ``dtype: [float16, bfloat16]`` (overrides the file's ``dtype``) and, instead of
batch/prefix/levels/suffix, ``trees:`` (a list of tree specs, :func:`tkprefix.bench.trees.generate`): a *tree case*
(configuration 8) has one query per leaf of the tree (batch = leaves, in preorder); ``levels``/``suffix`` then hold
the tree's Hydragen level form where it has one (:attr:`Tree.level_form`), else ``()``/``0`` and only the
implementations that take trees run (:func:`tkprefix.bench.peers.tree_reason`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from . import stats
from .trees import Tree, generate

__all__ = ["Case", "Sweep", "load_sweep", "load_sweeps", "expand_grid"]


@dataclass(frozen=True)
class Case:
    config: str
    batch: int
    q_heads: int
    kv_heads: int
    head_dim: int
    levels: tuple[tuple[int, int], ...]
    suffix: int
    dtype: str = "bfloat16"
    chunk_size: int = 64
    n_queries: int = 1
    tree: Tree | None = None

    @classmethod
    def for_tree(cls, config: str, tree: Tree, q_heads: int, kv_heads: int, head_dim: int, dtype: str = "bfloat16",
                 chunk_size: int = 64) -> "Case":
        form = tree.level_form
        levels, suffix = form if not isinstance(form, str) else ((), 0)
        return cls(config=config, batch=tree.n_leaves, q_heads=q_heads, kv_heads=kv_heads, head_dim=head_dim,
                   levels=levels, suffix=suffix, dtype=dtype, chunk_size=chunk_size, tree=tree)

    def __post_init__(self) -> None:
        for name in ("batch", "q_heads", "kv_heads", "head_dim", "chunk_size", "n_queries"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.suffix < 0:
            raise ValueError(f"suffix: must be >= 0, got {self.suffix}")
        if self.q_heads % self.kv_heads:
            raise ValueError(f"q_heads: {self.q_heads} is not a multiple of kv_heads {self.kv_heads}")
        for i, (rows, length) in enumerate(self.levels):
            if rows <= 0 or length <= 0 or self.batch % rows:
                raise ValueError(
                    f"levels[{i}]: need n_rows > 0 dividing batch={self.batch} and length > 0, got {(rows, length)}")
        if self.tree is not None and self.tree.n_leaves != self.batch:
            raise ValueError(f"batch: a tree case has one query per leaf ({self.tree.n_leaves}), got {self.batch}")
        if self.total_keys == 0:
            raise ValueError("case: a query must see at least one key (prefix + suffix > 0)")
        stats.dtype_bytes(self.dtype)

    @property
    def prefix(self) -> int:
        """Total shared tokens a sequence sees (sum of level lengths; for a tree, the most tokens above a leaf)."""
        if self.tree is not None:
            return max(self.tree.start[leaf] for leaf in self.tree.leaves)
        return sum(length for _, length in self.levels)

    @property
    def total_keys(self) -> int:
        """Keys of the longest sequence."""
        if self.tree is not None:
            return max(self.tree.path_len(b) for b in range(self.batch))
        return self.prefix + self.suffix

    @property
    def key_sum(self) -> int:
        """Keys seen summed over the batch."""
        return self.tree.path_tokens if self.tree is not None else self.batch * self.total_keys

    @property
    def leaf_max(self) -> int:
        """The longest private part of a sequence (a tree's longest leaf node)."""
        return max(self.tree.lengths[leaf] for leaf in self.tree.leaves) if self.tree is not None else self.suffix

    @property
    def group(self) -> int:
        return self.q_heads // self.kv_heads

    @property
    def unique_bytes(self) -> int:
        if self.tree is not None:  # every node's K and V once, queries in, outputs out
            e = stats.dtype_bytes(self.dtype)
            return (self.tree.unique_tokens * self.kv_heads * self.head_dim * 2 * e
                    + 2 * self.batch * self.n_queries * self.q_heads * self.head_dim * e)
        return stats.attention_unique_bytes(
            batch=self.batch, q_heads=self.q_heads, kv_heads=self.kv_heads, head_dim=self.head_dim,
            levels=self.levels, suffix=self.suffix, n_queries=self.n_queries, dtype=self.dtype)

    @property
    def flops(self) -> int:
        return stats.attention_flops(batch=1, q_heads=self.q_heads, head_dim=self.head_dim,
                                     keys_per_query=self.key_sum, n_queries=self.n_queries)

    @property
    def naive_bytes(self) -> int:
        """Bytes of a KV cache with the prefix copied for every sequence (what ``sdpa_naive`` holds)."""
        return self.batch * self.total_keys * self.kv_heads * self.head_dim * 2 * stats.dtype_bytes(self.dtype)

    def levels_str(self) -> str:
        if self.tree is not None:
            return f"tree:{self.tree.name}" + (f"={';'.join(f'{r}x{n}' for r, n in self.levels)}|{self.suffix}"
                                                if self.levels else "")
        return ";".join(f"{r}x{n}" for r, n in self.levels)

    def label(self) -> str:
        if self.tree is not None:
            return (f"{self.config} {self.tree.name} B{self.batch} H{self.q_heads}/{self.kv_heads} "
                    f"depth{self.tree.depth} nodes{self.tree.n_nodes} {self.dtype}")
        return (f"{self.config} B{self.batch} H{self.q_heads}/{self.kv_heads} P[{self.levels_str()}] "
                f"S{self.suffix}")

    def base_row(self) -> dict[str, Any]:
        row = {
            "config": self.config, "batch": self.batch, "q_heads": self.q_heads, "kv_heads": self.kv_heads,
            "head_dim": self.head_dim, "prefix": self.prefix, "suffix": self.leaf_max, "dtype": self.dtype,
            "unique_bytes": self.unique_bytes, "flops": self.flops, "levels": self.levels_str(),
            "chunk_size": self.chunk_size,
        }
        if self.tree is not None:
            t = self.tree
            row.update(tree=t.name, n_nodes=t.n_nodes, depth=t.depth, unique_tokens=t.unique_tokens,
                       path_tokens=t.path_tokens, sharing_ideal=round(t.sharing_ideal, 4))
        return row


@dataclass
class Sweep:
    config: str
    kind: str
    cases: list[Case]
    impls: list[str]
    graph: list[bool] = field(default_factory=lambda: [False, True])
    reps: int = 30
    min_reps: int = 10
    time_budget_s: float = 2.0
    description: str = ""
    trimmed: str = ""
    skip: dict = field(default_factory=dict)  # impl -> reason: listed, reported as unavailable, not run
    priority: int = 50  # run order (lower first): what a deadline cuts comes last
    raw: dict = field(default_factory=dict)


def _pairs(value: Any, name: str) -> list[tuple[int, int]]:
    out = []
    for v in value:
        if not (isinstance(v, (list, tuple)) and len(v) == 2):
            raise ValueError(f"{name}: expected pairs like [a, b], got {v!r}")
        out.append((int(v[0]), int(v[1])))
    return out


def expand_grid(config: str, grid: Mapping[str, Any], *, head_dim: int = 128, dtype: str = "bfloat16",
                chunk_size: int = 64) -> Iterator[Case]:
    """Every case of a sweep grid (see the module docstring)."""
    known = {"heads", "batch", "prefix", "suffix", "batch_prefix", "levels", "dtype", "trees"}
    unknown = set(grid) - known
    if unknown:
        raise ValueError(f"grid: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    heads = _pairs(grid.get("heads", [[32, 32]]), "grid.heads")
    dtypes = [str(d) for d in grid.get("dtype", [dtype])]
    if "trees" in grid:
        clash = {"batch", "prefix", "suffix", "batch_prefix", "levels"} & set(grid)
        if clash:
            raise ValueError(f"grid: trees fix batch and prefixes; drop {sorted(clash)}")
        trees = [generate(spec) for spec in grid["trees"]]
        for tree, (hq, hkv), dt in itertools.product(trees, heads, dtypes):
            yield Case.for_tree(config, tree, hq, hkv, head_dim, dtype=dt, chunk_size=chunk_size)
        return
    suffixes = [int(s) for s in grid.get("suffix", [0])]
    if "batch_prefix" in grid:
        if "batch" in grid or "prefix" in grid:
            raise ValueError("grid: give either batch_prefix or batch + prefix, not both")
        bl = [(b, ((1, p),) if p else ()) for b, p in _pairs(grid["batch_prefix"], "grid.batch_prefix")]
    else:
        batches = [int(b) for b in grid.get("batch", [])]
        if not batches:
            raise ValueError("grid.batch: need at least one batch size")
        if "levels" in grid:
            if "prefix" in grid:
                raise ValueError("grid: give either levels or prefix, not both")
            level_sets = [tuple(_pairs(ls, "grid.levels[]")) for ls in grid["levels"]]
        else:
            level_sets = [((1, int(p)),) if int(p) else () for p in grid.get("prefix", [0])]
        bl = list(itertools.product(batches, level_sets))
    for dt, (hq, hkv), (b, levels), s in itertools.product(dtypes, heads, bl, suffixes):
        yield Case(config=config, batch=b, q_heads=hq, kv_heads=hkv, head_dim=head_dim, levels=tuple(levels),
                   suffix=s, dtype=dt, chunk_size=chunk_size)


def load_sweep(path: str | Path) -> Sweep:
    import yaml

    path = Path(path)
    with open(path) as f:
        raw = yaml.safe_load(f)
    if not isinstance(raw, dict) or "config" not in raw:
        raise ValueError(f"{path}: a sweep file needs a top-level mapping with 'config'")
    kind = raw.get("kind", "attention")
    if kind not in ("attention", "e2e"):
        raise ValueError(f"{path}: kind must be attention or e2e, got {kind!r}")
    cases: list[Case] = []
    if kind == "attention":
        cases = list(expand_grid(raw["config"], raw.get("grid", {}), head_dim=int(raw.get("head_dim", 128)),
                                 dtype=str(raw.get("dtype", "bfloat16")), chunk_size=int(raw.get("chunk_size", 64))))
    return Sweep(
        config=raw["config"], kind=kind, cases=cases, impls=list(raw.get("impls", [])),
        graph=[bool(g) for g in raw.get("graph", [False, True])], reps=int(raw.get("reps", 30)),
        min_reps=int(raw.get("min_reps", 10)), time_budget_s=float(raw.get("time_budget_s", 2.0)),
        description=str(raw.get("description", "")).strip(), trimmed=str(raw.get("trimmed", "")).strip(),
        skip={str(k): str(v) for k, v in (raw.get("skip") or {}).items()}, priority=int(raw.get("priority", 50)),
        raw=raw)


def load_sweeps(directory: str | Path, only: list[str] | None = None) -> list[Sweep]:
    files = sorted(Path(directory).glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"sweep dir: no *.yaml in {directory}")
    sweeps = [load_sweep(p) for p in files]
    if only:
        names = {s.config for s in sweeps}
        missing = [o for o in only if o not in names and not any(n.startswith(o) for n in names)]
        if missing:
            raise ValueError(f"--only: unknown configurations {missing} (have {sorted(names)})")
        sweeps = [s for s in sweeps if any(s.config == o or s.config.startswith(o) for o in only)]
    return sweeps
