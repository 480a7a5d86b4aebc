"""Named, seeded split recipes: ``recipe.split(source, seed) -> {split: row indices into the source}``.

A split recipe is how a release is cut into train / query / retrieval (e.g. ``cifar10-1``, ``mirflickr25k``), the
dataset half of what papers call the evaluation protocol; ``bitrieve data convert --split NAME`` applies one and the
store's card.json records it under ``protocol`` (the store format's key).

Same recipe + same seed -> byte-identical indices (numpy PCG64 `default_rng(seed)`). The split seed is separate from
any training seed; the drawn indices are stored in the canonical store (split_indices.npz), so a store never depends
on re-drawing. Order: the retrieval set keeps the drawn (random) order, never a class-sorted one, because
stable tie-breaking by database order would otherwise correlate with relevance (docs/evaluation.md, "Ranking and
ties", measures how much tie order matters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bitrieve.data.source import Source
from bitrieve.data.types import DataError

Indices = dict[str, np.ndarray]


@dataclass(frozen=True)
class SplitRecipe:
    name: str
    citation: str
    description: str
    fn: Callable[[Source, int], Indices]
    seeded: bool = True

    def split(self, src: Source, seed: int | None) -> Indices:
        if self.seeded and seed is None:
            raise DataError(f"split recipe '{self.name}' draws a random split: give a split seed")
        out = self.fn(src, 0 if seed is None else int(seed))
        return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def _official(src: Source, *names: str) -> np.ndarray:
    if src.official is None:
        raise DataError(f"{src.name}: this split recipe needs the release's own train/test split, which the reader "
                        "did not provide")
    rows = np.flatnonzero(np.isin(src.official, names))
    if len(rows) == 0:
        raise DataError(f"{src.name}: no rows in official split(s) {names} (have {sorted(set(src.official))})")
    return rows


def _class_of(src: Source) -> np.ndarray:
    if src.labels.shape[1] == 0 or (src.labels.sum(1) != 1).any():
        raise DataError(f"{src.name}: a per-class split recipe needs single-label (one-hot) data")
    return src.labels.argmax(1)


def _per_class(rng: np.random.Generator, rows: np.ndarray, cls: np.ndarray, k: int, what: str) -> np.ndarray:
    picked = []
    for c in np.unique(cls[rows]):
        members = rows[cls[rows] == c]
        if len(members) < k:
            raise DataError(f"{what}: class {c} has {len(members)} rows, split recipe needs {k}")
        picked.append(rng.choice(members, size=k, replace=False))
    return rng.permutation(np.concatenate(picked))


def _query_rest_train(n_query: int, n_train: int) -> Callable[[Source, int], Indices]:
    """Random ``n_query`` queries, the rest is the retrieval set, ``n_train`` training rows sampled from it."""
    def fn(src: Source, seed: int) -> Indices:
        n = len(src)
        if n < n_query + n_train:
            raise DataError(f"{src.name}: {n} rows, split recipe needs {n_query} query + {n_train} train")
        perm = np.random.default_rng(seed).permutation(n)
        query, retrieval = perm[:n_query], perm[n_query:]
        return {"train": retrieval[:n_train], "query": query, "retrieval": retrieval}
    return fn


def _djsrh_per_label(first: tuple[int, int], rest: tuple[int, int], train_total: int | None
                     ) -> Callable[[Source, int], Indices]:
    """DJSRH's sampler (official code `datasets.py`): for each label column in order, shuffle the rows that carry it,
    drop rows already picked, take the next ``q`` as queries and the following ``t`` as training rows (``first`` for
    label 0, ``rest`` after); retrieval = every row that is not a query; training topped up at random from the
    retrieval set to ``train_total`` when short. DJSRH keeps the retrieval set in file order; we shuffle it (see the
    module note on ties) - the membership is the same.
    """
    def fn(src: Source, seed: int) -> Indices:
        rng = np.random.default_rng(seed)
        n, labels = len(src), src.labels
        taken = np.zeros(n, dtype=bool)
        query, train = [], []
        for c in range(labels.shape[1]):
            rows = np.flatnonzero(labels[:, c] == 1)
            rows = rows[rng.permutation(len(rows))]
            rows = rows[~taken[rows]]
            q, t = first if c == 0 else rest
            query.append(rows[:q])
            train.append(rows[q:q + t])
            taken[rows[:q + t]] = True
        query_idx, train_idx = np.concatenate(query), np.concatenate(train)
        retrieval = np.flatnonzero(~np.isin(np.arange(n), query_idx))
        if train_total is not None and len(train_idx) < train_total:
            pool = np.setdiff1d(retrieval, train_idx)
            train_idx = np.concatenate([train_idx, rng.permutation(pool)[: train_total - len(train_idx)]])
        return {"train": train_idx, "query": query_idx, "retrieval": rng.permutation(retrieval)}
    return fn


def _wiki(src: Source, seed: int) -> Indices:
    train = _official(src, "train")
    return {"train": train, "query": _official(src, "test"), "retrieval": train}


def _cifar10_1(src: Source, seed: int, query_per_class: int = 100, train_per_class: int = 500) -> Indices:
    """The per-class counts are parameters only for scaled-down copies (``bitrieve reproduce --smoke``)."""
    rng = np.random.default_rng(seed)
    cls = _class_of(src)
    query = _per_class(rng, _official(src, "test"), cls, query_per_class, "cifar10-1 query")
    train = _per_class(rng, _official(src, "train"), cls, train_per_class, "cifar10-1 train")
    rest = np.setdiff1d(np.arange(len(src)), query)
    return {"train": train, "query": query, "retrieval": rng.permutation(rest)}


def _cifar10_2(src: Source, seed: int) -> Indices:
    rng = np.random.default_rng(seed)
    train = rng.permutation(_official(src, "train"))
    return {"train": train, "query": rng.permutation(_official(src, "test")), "retrieval": train}


def _cifar10_dsh(src: Source, seed: int) -> Indices:
    """DSH's official evaluation (CIFAR-10/test_map.m): the 10,000 test images are both queries and database."""
    rng = np.random.default_rng(seed)
    test = rng.permutation(_official(src, "test"))
    return {"train": rng.permutation(_official(src, "train")), "query": test, "retrieval": test}


def _mnist_test(src: Source, seed: int) -> Indices:
    rng = np.random.default_rng(seed)
    cls = _class_of(src)
    query = _per_class(rng, np.arange(len(src)), cls, 100, "mnist-test query")
    retrieval = rng.permutation(np.setdiff1d(np.arange(len(src)), query))
    return {"train": retrieval[:5000], "query": query, "retrieval": retrieval}


def _official_eval_on_test(src: Source, seed: int) -> Indices:
    """Caption data: train on the official train split; the test split is both query and gallery (R@K)."""
    out = {"train": _official(src, "train"), "query": _official(src, "test")}
    out["retrieval"] = out["query"]
    if src.official is not None and np.isin(src.official, ["dev"]).any():
        out["dev"] = _official(src, "dev")
    return out


def _official_three(src: Source, seed: int) -> Indices:
    return {"train": _official(src, "train"), "query": _official(src, "query"),
            "retrieval": _official(src, "retrieval")}


def _ucmfh(src: Source, seed: int) -> Indices:
    out = _official_three(src, seed)
    out["train"] = out["train"][:4992]  # UCMFH load_dataset.py: train_images[:4992]
    return out


SPLITS: dict[str, SplitRecipe] = {p.name: p for p in [
    SplitRecipe("wiki", "Rasiwasia et al., ACM MM 2010; hashing use e.g. CMFH (Ding et al., CVPR 2014)",
             "the release's 693 test pairs = query; its 2,173 train pairs = train = retrieval", _wiki, seeded=False),
    SplitRecipe("mirflickr25k", "DJSRH (Su et al., ICCV 2019, Sec. 4.1; official datasets.py), also used by AGCH",
             "20,015 pairs; per label: 160 query + 400 train for label 0, then 80 + 200 from each further label "
             "(rows not yet picked) = 2,000 query / 5,000 train (topped up at random); retrieval = the 18,015 "
             "non-query rows (train included)", _djsrh_per_label((160, 400), (80, 200), 5000)),
    SplitRecipe("mirflickr25k-random", "DCMH-style uniform split (Jiang & Li, CVPR 2017) with DJSRH's sizes",
             "2,000 random query; the other 18,015 retrieval; 5,000 train drawn from retrieval",
             _query_rest_train(2000, 5000)),
    SplitRecipe("nuswide10", "DJSRH (Su et al., ICCV 2019, Sec. 4.1; official datasets.py)",
             "186,577 pairs; per label 200 query + 500 train (rows not yet picked) = 2,000 / 5,000; retrieval = the "
             "184,577 non-query rows", _djsrh_per_label((200, 500), (200, 500), None)),
    SplitRecipe("mscoco", "DJSRH (Su et al., ICCV 2019, Sec. 4.1); DGCPN (Yu et al., AAAI 2021)",
             "2,000 random query, the rest retrieval, 5,000 train drawn from retrieval", _query_rest_train(2000, 5000)),
    SplitRecipe("cifar10-1", "DSH/DPSH-style 'CIFAR-10 (I)', e.g. DPSH (Li et al., IJCAI 2016), DeepHash-pytorch",
             "1,000 query = 100 per class from the test set; 5,000 train = 500 per class from the train set; "
             "retrieval = all 60,000 except the queries (59,000, train included)", _cifar10_1),
    SplitRecipe("cifar10-2", "'CIFAR-10 (II)', e.g. GreedyHash (Su et al., NeurIPS 2018, official cifar2.py)",
             "query = the 10,000 test images; train = retrieval = the 50,000 train images", _cifar10_2),
    SplitRecipe("cifar10-dsh", "DSH (Liu et al., CVPR 2016), official CIFAR-10/test_map.m",
             "train = the 50,000 train images; query = retrieval = the 10,000 test images (each query is also in "
             "the database, as in the official evaluation)", _cifar10_dsh),
    SplitRecipe("mnist-test", "bitrieve quick protocol on the MNIST test set (LeCun et al., 1998); no paper",
             "1,000 query = 100 per class; the other 9,000 retrieval; 5,000 train drawn from retrieval", _mnist_test),
    SplitRecipe("official-captions", "the release's own split (COCO 2017 train/val; Flickr8k, Hodosh et al. 2013; "
             "Karpathy & Fei-Fei, CVPR 2015)", "train = official train; query = retrieval = official test "
             "(or val); dev kept as split 'dev' when present", _official_eval_on_test, seeded=False),
    SplitRecipe("official", "the release's own train/query/retrieval files (e.g. UCMFH, Tu et al. 2023)",
             "splits exactly as released", _official_three, seeded=False),
    SplitRecipe("ucmfh", "UCMFH (Xia et al., Information Fusion 2023), released load_dataset.py",
             "as released, but training on the first 4,992 train rows as the released loader does", _ucmfh,
             seeded=False),
]}


def cifar10_1_scaled(query_per_class: int, train_per_class: int) -> SplitRecipe:
    """A scaled-down CIFAR-10 (I) for smoke runs: the same draw with fewer rows per class (never a paper protocol)."""
    return SplitRecipe(f"cifar10-1-scaled-{query_per_class}-{train_per_class}", SPLITS["cifar10-1"].citation,
                    f"SMOKE SCALE: {query_per_class} query / {train_per_class} train per class; retrieval = every "
                    "other row of the source", lambda src, seed: _cifar10_1(src, seed, query_per_class,
                                                                             train_per_class))


# the full release sizes of the recipes a proxy (data/proxy.py) can scale down, and their per-label sampler counts
SCALABLE = {"mirflickr25k": 20015, "nuswide10": 186577, "mscoco": 122218}
_PER_LABEL = {"mirflickr25k": ((160, 400), (80, 200), 5000), "nuswide10": ((200, 500), (200, 500), None)}


def scaled_sizes(base: str, rows: int) -> tuple[int, int]:
    """(query, train) rows of ``base``'s recipe scaled to ``rows``: the real fractions (2,000 and 5,000 of the
    release), but at least 100 queries and 200 training rows (a tenth / a quarter of ``rows`` when smaller)."""
    full = SCALABLE[base]
    return (max(round(rows * 2000 / full), min(100, rows // 10)),
            max(round(rows * 5000 / full), min(200, rows // 4)))


def scaled_split(base: str, rows: int) -> SplitRecipe:
    """``base``'s procedure scaled down for a ``rows``-row proxy (data/proxy.py, ``--rows``): SCALED, never a paper
    protocol. Named ``<base>-scaled-<rows>`` and resolved by `get_split`, so ``data convert --split`` can redraw it."""
    if base not in SCALABLE or not 0 < rows < SCALABLE[base]:
        raise DataError(f"no scaled split recipe '{base}-scaled-{rows}' (scalable: {', '.join(SCALABLE)}; rows "
                        "between 1 and the release's size)")
    n_query, n_train = scaled_sizes(base, rows)
    if n_query + n_train > rows:
        raise DataError(f"{rows} rows are too few for a scaled '{base}' split ({n_query} query + {n_train} train)")
    if base in _PER_LABEL:
        first, rest, total = _PER_LABEL[base]
        q, t = n_query / 2000, n_train / 5000  # the real recipes draw 2,000 query / 5,000 train in all

        def scale(pair: tuple[int, int]) -> tuple[int, int]:
            return max(1, round(pair[0] * q)), max(1, round(pair[1] * t))

        fn = _djsrh_per_label(scale(first), scale(rest), n_train if total else None)
        how = (f"{base}'s per-label sampler with {scale(first)[0]} + {scale(first)[1]} rows for label 0 and "
               f"{scale(rest)[0]} + {scale(rest)[1]} for each further label")
    else:
        fn, how = _query_rest_train(n_query, n_train), f"{n_query} random query, {n_train} train from retrieval"

    def sized(src: Source, seed: int) -> Indices:
        if len(src) != rows:
            raise DataError(f"{src.name}: {len(src)} rows, split recipe '{base}-scaled-{rows}' is for {rows}")
        return fn(src, seed)

    return SplitRecipe(f"{base}-scaled-{rows}", SPLITS[base].citation,
                       f"SCALED to {rows:,} rows (a proxy, not a paper protocol): {how} -> about {n_query:,} query / "
                       f"{n_train:,} train (the release's fractions; at least 100 / 200); retrieval = every non-query "
                       "row", sized)


def get_split(name: str) -> SplitRecipe:
    """The split recipe ``name`` (or ``<base>-scaled-<rows>``, `scaled_split`); DataError listing the known ones
    otherwise."""
    base, _, rows = name.rpartition("-scaled-")
    if base in SCALABLE and rows.isdigit():
        return scaled_split(base, int(rows))
    if name not in SPLITS:
        raise DataError(f"unknown split recipe '{name}' (known: {', '.join(SPLITS)})")
    return SPLITS[name]
