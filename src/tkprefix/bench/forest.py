"""Forest cases (configuration 7): many distinct system prompts, each shared by its own group of sequences, some with a
second shared level (documents) under them, and private suffixes of different lengths.

A :class:`Forest` lists its prompts, its documents (each under one prompt) and its sequences as
``(prompt, document or -1, suffix length)``, grouped: the sequences of one prompt are contiguous, and within a prompt
those of one document are contiguous (every sharing group is a contiguous run of the batch, as FlashInfer's cascade
and the prefix-tree caches lay them out). :func:`make_forest` draws one from a seed (our own generator).

A forest is *regular* when every prompt has the same length and the same number of sequences, every prompt has the
same number of equal-length documents each shared by the same number of sequences (or none has any), and every suffix
has the same length: only then is it Hydragen's ``levels`` form (``B_i | B``), which :meth:`Forest.as_levels` returns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["Forest", "make_forest", "forest_from_spec"]


@dataclass(frozen=True)
class Forest:
    prompts: tuple[int, ...]  # length of each system prompt
    docs: tuple[tuple[int, int], ...]  # (prompt index, length) of each document
    seqs: tuple[tuple[int, int, int], ...]  # (prompt index, document index or -1, suffix length) per sequence
    name: str = ""

    def __post_init__(self) -> None:
        if not self.prompts or not self.seqs:
            raise ValueError("forest: needs at least one prompt and one sequence")
        if any(n <= 0 for n in self.prompts):
            raise ValueError(f"forest.prompts: lengths must be positive, got {self.prompts}")
        for i, (p, n) in enumerate(self.docs):
            if not 0 <= p < len(self.prompts) or n <= 0:
                raise ValueError(f"forest.docs[{i}]: need a valid prompt index and a positive length, got {(p, n)}")
        done_p: set[int] = set()
        done_pd: set[tuple[int, int]] = set()
        prev: tuple[int, int] | None = None
        for b, (p, d, s) in enumerate(self.seqs):
            if not 0 <= p < len(self.prompts) or s < 0 or not (d == -1 or (0 <= d < len(self.docs))):
                raise ValueError(f"forest.seqs[{b}]: bad (prompt, doc, suffix) {(p, d, s)}")
            if d >= 0 and self.docs[d][0] != p:
                raise ValueError(f"forest.seqs[{b}]: document {d} is not under prompt {p}")
            if prev is not None and (p, d) != prev:
                done_pd.add(prev)
                if p != prev[0]:
                    done_p.add(prev[0])
            if p in done_p or (p, d) in done_pd:
                raise ValueError(f"forest.seqs[{b}]: the sequences of one prompt / document must be contiguous")
            prev = (p, d)

    @property
    def batch(self) -> int:
        return len(self.seqs)

    def shared(self, b: int) -> int:
        """Shared tokens sequence b sees (its prompt, then its document if any)."""
        p, d, _ = self.seqs[b]
        return self.prompts[p] + (self.docs[d][1] if d >= 0 else 0)

    def keys(self, b: int) -> int:
        return self.shared(b) + self.seqs[b][2]

    @property
    def total_keys(self) -> int:
        """Keys summed over all sequences (what a copy-everything cache holds and what the FLOPs scale with)."""
        return sum(self.keys(b) for b in range(self.batch))

    @property
    def unique_tokens(self) -> int:
        """Tokens a sharing cache holds once: every prompt, every document, every suffix."""
        return sum(self.prompts) + sum(n for _, n in self.docs) + sum(s for _, _, s in self.seqs)

    def groups(self, level: int) -> list[tuple[int, int]]:
        """Contiguous runs ``(start, stop)`` of the batch sharing one prompt (level 0) or one document (level 1; a run
        without a document is one run per prompt)."""
        runs: list[tuple[int, int]] = []
        for b, (p, d, _) in enumerate(self.seqs):
            key = p if level == 0 else (p, d)
            prev = None if b == 0 else (self.seqs[b - 1][0] if level == 0 else self.seqs[b - 1][:2])
            if b == 0 or key != prev:
                runs.append((b, b + 1))
            else:
                runs[-1] = (runs[-1][0], b + 1)
        return runs

    def as_levels(self) -> tuple[tuple[tuple[int, int], ...], int] | None:
        """``(levels, suffix)`` in Hydragen's form if the forest is regular (module docstring), else None."""
        B = self.batch
        if len(set(self.prompts)) != 1 or len({s for _, _, s in self.seqs}) != 1:
            return None
        runs = self.groups(0)
        if len({b - a for a, b in runs}) != 1 or len(runs) != len(self.prompts):
            return None
        levels = [(len(runs), self.prompts[0])]
        has_doc = {d >= 0 for _, d, _ in self.seqs}
        if has_doc == {True}:
            druns = self.groups(1)
            if len({n for _, n in self.docs}) != 1 or len({b - a for a, b in druns}) != 1 \
                    or len(druns) != len(self.docs):
                return None
            levels.append((len(druns), self.docs[0][1]))
        elif has_doc != {False}:
            return None
        if any(B % r for r, _ in levels):
            return None
        return tuple(levels), self.seqs[0][2]

    def irregular_reason(self) -> str:
        fan = [b - a for a, b in self.groups(0)]
        suf = [s for _, _, s in self.seqs]
        return (f"irregular forest ({len(self.prompts)} prompts of {min(self.prompts)}-{max(self.prompts)} tokens, "
                f"each shared by {min(fan)}-{max(fan)} sequences, {len(self.docs)} documents, suffixes "
                f"{min(suf)}-{max(suf)}): Hydragen's levels need equal-length prefixes each shared by B/rows "
                "sequences (B_i | B) and one suffix length")

    def describe(self) -> str:
        return (f"forest {self.name or ''}{'/' if self.name else ''}{len(self.prompts)}p{len(self.docs)}d"
                f"{self.batch}s")


def make_forest(*, prompts: int, prompt_len: tuple[int, int], fanout: tuple[int, int], suffix: tuple[int, int],
                doc_frac: float = 0.0, docs_per_prompt: tuple[int, int] = (2, 4), doc_len: tuple[int, int] = (256, 1024),
                even_docs: bool = False, seed: int = 0, name: str = "") -> Forest:
    """A random forest: ``prompts`` prompts with lengths uniform in ``prompt_len``, each shared by a number of
    sequences uniform in ``fanout``; a fraction ``doc_frac`` of the prompts has ``docs_per_prompt`` documents
    (lengths in ``doc_len``) splitting that prompt's sequences (each document gets at least one; ``even_docs``: as
    evenly as possible); private suffix lengths uniform in ``suffix``. Bounds are inclusive. With every range a single
    value, ``doc_frac`` 0 or 1 and ``even_docs`` where the fan-out divides evenly, the forest is regular."""
    for nm, (lo, hi) in (("prompt_len", prompt_len), ("fanout", fanout), ("suffix", suffix),
                         ("docs_per_prompt", docs_per_prompt), ("doc_len", doc_len)):
        if lo > hi or lo < 0:
            raise ValueError(f"{nm}: need 0 <= lo <= hi, got {(lo, hi)}")
    if prompts <= 0 or not 0.0 <= doc_frac <= 1.0:
        raise ValueError(f"prompts / doc_frac: need prompts > 0 and 0 <= doc_frac <= 1, got {prompts}, {doc_frac}")
    rng = random.Random(seed)
    plens, docs, seqs = [], [], []
    n_doc_prompts = round(doc_frac * prompts)
    with_docs = set(rng.sample(range(prompts), n_doc_prompts))
    for p in range(prompts):
        plens.append(rng.randint(*prompt_len))
        fan = rng.randint(*fanout)
        if p in with_docs:
            nd = min(rng.randint(*docs_per_prompt), fan)
            if even_docs:
                cuts = [fan * j // nd for j in range(1, nd)]
            else:
                cuts = sorted(rng.sample(range(1, fan), nd - 1)) if nd > 1 else []
            bounds = [0, *cuts, fan]
            for j in range(nd):
                docs.append((p, rng.randint(*doc_len)))
                seqs.extend((p, len(docs) - 1, rng.randint(*suffix)) for _ in range(bounds[j + 1] - bounds[j]))
        else:
            seqs.extend((p, -1, rng.randint(*suffix)) for _ in range(fan))
    return Forest(prompts=tuple(plens), docs=tuple(docs), seqs=tuple(seqs), name=name)


def _span(spec: Mapping[str, Any], key: str, default: Any = None) -> tuple[int, int]:
    v = spec.get(key, default)
    if v is None:
        raise ValueError(f"forest spec: missing {key!r}")
    if isinstance(v, int):
        return (v, v)
    if not (isinstance(v, (list, tuple)) and len(v) == 2):
        raise ValueError(f"forest spec: {key} must be an int or [lo, hi], got {v!r}")
    return (int(v[0]), int(v[1]))


def forest_from_spec(spec: Mapping[str, Any]) -> Forest:
    """A forest from a sweep file's ``forest`` entry (keys as :func:`make_forest`; ranges as ``[lo, hi]``)."""
    known = {"name", "prompts", "prompt_len", "fanout", "suffix", "doc_frac", "docs_per_prompt", "doc_len",
             "even_docs", "seed"}
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"forest spec: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    return make_forest(prompts=int(spec.get("prompts", 0)), prompt_len=_span(spec, "prompt_len"),
                       fanout=_span(spec, "fanout"), suffix=_span(spec, "suffix"),
                       doc_frac=float(spec.get("doc_frac", 0.0)), docs_per_prompt=_span(spec, "docs_per_prompt", (2, 4)),
                       doc_len=_span(spec, "doc_len", (256, 1024)), even_docs=bool(spec.get("even_docs", False)),
                       seed=int(spec.get("seed", 0)),
                       name=str(spec.get("name", "")))
