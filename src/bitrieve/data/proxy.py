"""`bitrieve data proxy NAME --kind KIND --to STORE`: benchmark-shaped PROXY stores (DESIGN.md, "Proxies").

A proxy has a real release's row count, split recipe, label and tag widths and label statistics, with SYNTHETIC image
features (kind ``clip``: synthetic image and text features). It shows that a method trains at that shape; its numbers
are never results on the real dataset, and nothing may be tuned on it. Its card says PROXY (name
``<NAME>-proxy-<KIND>[-<rows>]``, version ``PROXY: ...``, a ``proxy`` block); run records carry the card name, and
report tables and figures add "(PROXY)" to it (report/results.py).

Where every figure comes from (docs/datasets.md, "Proxies", has the same table):

- ``mirflickr25k``: 20,015 rows, the REAL ``LAll`` (24 labels) and ``YAll`` (1,386 binary tags) of the DCMH/DJSRH
  release, read from ``--mir`` (../shared/data/mirflickr25k/SOURCE.md). Mean 3.78 labels and 4.64 tags per row.
- ``nuswide10``: 186,577 rows, 10 labels, 1,000 binary tags: the DCMH/DJSRH release's sizes (readers/djsrh_mat.py;
  the DGCPN_dataset_preprocess repository's NUS readme names 186,577 too, and could only reach 190,421 from the raw
  NUS-WIDE files). Labels in frequency order sky, clouds, person, water, animal, grass, buildings, window, plants,
  lake (the order in which code ranking NUS-WIDE's ``AllLabels`` by count lists the top 10); the release's column
  order is not documented. Per-label frequencies: no published figure for these rows was found, so
  `NUS_FREQUENCIES` is an ASSUMPTION (decreasing in that order; 1.60 labels per row). Tags per row: 1 + Poisson(3.64),
  mean 4.64 as in MIRFlickr's real ``YAll`` (ASSUMED alike).
- ``mscoco``: 122,218 rows = the 123,287 COCO 2014 train + val images less the 1,069 without any category, 80
  labels, 2,000-d text = bag-of-words of one caption over the 2,000 most frequent words (a DCHMT-family ``.mat``
  preparation script for MS-COCO states these counts; found by code search, its repository not identified; DGCPN's
  own repository holds no data code). Per-category frequencies: no published per-image figure was found; estimated
  from the 159 real COCO-mini images (../shared/data/coco-mini; one image drawn per category, so biased towards
  uniform): counts + 1/2, rescaled to 3.5 categories per image (Lin et al., "Microsoft COCO", arXiv:1405.0312,
  Sec. 5: 3.5 categories and 7.7 instances per image), capped at 0.9. Words per row: 1 + Poisson(7.6), mean 8.6 =
  distinct words of 2+ letters per COCO-mini caption (its 795 captions). Stored binary (the script keeps counts).

Labels (nuswide10, mscoco): independent Bernoulli per label, rows without a label redrawn, the rates solved so that
the frequencies after redrawing equal the targets (so the mean labels per row is their sum). No co-occurrence is
modelled. Tags: each row draws k slots; a slot is a background tag (Zipf over all tags) with probability
`TAG_BACKGROUND`, else a tag of one of the row's labels (uniform), each label owning `TAGS_PER_LABEL` random tags with
Zipf weights; repeated draws merge.

Image side, with L the row's multi-hot labels (float), |L| their count, W ~ N(0, 1) of shape (C, D), e ~ N(0, 1):

- ``dense``:  X = relu(L W + 0.5 e), D = 4,096 (non-negative, so every pairwise cosine is positive: the kind of
  feature that made AGCH collapse in issue 20).
- ``sparse``: X = relu(L W / sqrt(max(1, |L|)) + 1.0 e - 1.2), D = 4,096 (VGG-fc7-like: about 80 % zeros).
- ``clip``:   image and text (512-d each, replacing the tags) = m + L W / sqrt(|L|) + 1.0 e with W, m and e drawn
  per modality and m a mean vector of norm 32 shared by every row (CLIP embeddings share a large common direction;
  with these numbers rows without a common label have cosine about 0.5). Laid out as the UCMFH release's
  train/query/retrieval files (train rows repeated in retrieval), rows drawn by the dataset's own split recipe.

The parameters are fixed constants of this module, chosen before anything was run on a proxy; they must never be
tuned to a method's score. Rows are generated in chunks of `CHUNK_ROWS` in source order, chunk c's noise from
PCG64 seeded with (seed, stream, c), so one row's features depend only on the seed and its position, and memory
holds one copy of the output. ``--rows N``: a seeded subset of the full-size label/tag matrices (MIR: real rows) and
the split recipe scaled to N rows (data/splits.py, `scaled_split`).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bitrieve.data.types import DataError

GENERATOR_VERSION = 1
KINDS = ("dense", "sparse", "clip")
IMAGE_DIM, CLIP_DIM = 4096, 512
DENSE_NOISE = 0.5
SPARSE_NOISE, SPARSE_SHIFT = 1.0, 1.2
CLIP_SIGMA, CLIP_MEAN_NORM = 1.0, 32.0
CHUNK_ROWS = 4096
TAG_BACKGROUND, TAGS_PER_LABEL, TAG_ZIPF = 0.3, 50, 1.0
FREQUENCY_CAP = 0.9
_W, _NOISE, _LABELS, _TAGS, _ROWS = range(1, 6)  # seed streams

NUS_LABELS = ["sky", "clouds", "person", "water", "animal", "grass", "buildings", "window", "plants", "lake"]
NUS_FREQUENCIES = [0.40, 0.27, 0.25, 0.17, 0.14, 0.10, 0.09, 0.07, 0.06, 0.05]  # ASSUMED (no published figure)
# images per category among the 159 COCO-mini images (../shared/data/coco-mini/annotations, train + val 2017), in
# the order of the annotation files' categories[]
COCO_MINI_COUNTS = {
    "person": 75, "bicycle": 3, "car": 16, "motorcycle": 5, "airplane": 3, "bus": 5, "train": 4, "truck": 10,
    "boat": 7, "traffic light": 6, "fire hydrant": 3, "stop sign": 3, "parking meter": 4, "bench": 6, "bird": 4,
    "cat": 4, "dog": 10, "horse": 2, "sheep": 3, "cow": 2, "elephant": 3, "bear": 4, "zebra": 2, "giraffe": 2,
    "backpack": 6, "umbrella": 3, "handbag": 6, "tie": 4, "suitcase": 4, "frisbee": 2, "skis": 3, "snowboard": 3,
    "sports ball": 6, "kite": 2, "baseball bat": 4, "baseball glove": 5, "skateboard": 4, "surfboard": 3,
    "tennis racket": 2, "bottle": 23, "wine glass": 8, "cup": 21, "fork": 10, "knife": 13, "spoon": 8, "bowl": 22,
    "banana": 4, "apple": 3, "sandwich": 5, "orange": 3, "broccoli": 7, "carrot": 3, "hot dog": 1, "pizza": 5,
    "donut": 7, "cake": 4, "chair": 22, "couch": 4, "potted plant": 12, "bed": 6, "dining table": 26, "toilet": 5,
    "tv": 9, "laptop": 8, "mouse": 6, "remote": 3, "keyboard": 6, "cell phone": 7, "microwave": 5, "oven": 9,
    "toaster": 3, "sink": 12, "refrigerator": 10, "book": 14, "clock": 6, "vase": 7, "scissors": 4,
    "teddy bear": 5, "hair drier": 2, "toothbrush": 5}
COCO_MINI_IMAGES, COCO_CATEGORIES_PER_IMAGE = 159, 3.5


def coco_frequencies() -> np.ndarray:
    raw = (np.array(list(COCO_MINI_COUNTS.values()), float) + 0.5) / COCO_MINI_IMAGES
    return np.minimum(raw * COCO_CATEGORIES_PER_IMAGE / raw.sum(), FREQUENCY_CAP)


@dataclass(frozen=True)
class Shape:
    rows: int
    labels: int
    tags: int
    prefix: str  # of the .mat release files
    citation: str
    tags_per_row: float = 0.0  # mean, synthetic tags only


SHAPES = {
    "mirflickr25k": Shape(20015, 24, 1386, "mirflickr25k", "Huiskes & Lew, ACM MIR 2008; release: DCMH (Jiang & "
                          "Li, CVPR 2017), DJSRH (Su et al., ICCV 2019)"),
    "nuswide10": Shape(186577, 10, 1000, "nus-wide-tc10", "Chua et al., CIVR 2009; release: DCMH (CVPR 2017), "
                       "DJSRH (ICCV 2019)", 4.64),
    "mscoco": Shape(122218, 80, 2000, "mscoco", "Lin et al., ECCV 2014; DJSRH-family .mat release (e.g. DGCPN, Yu "
                    "et al., AAAI 2021)", 8.6),
}
FORMULAS = {
    "dense": f"X = relu(L W + {DENSE_NOISE} e), W ~ N(0,1) (C x {IMAGE_DIM}), e ~ N(0,1)",
    "sparse": f"X = relu(L W / sqrt(max(1,|L|)) + {SPARSE_NOISE} e - {SPARSE_SHIFT}), W ~ N(0,1) (C x {IMAGE_DIM}), "
              "e ~ N(0,1)",
    "clip": f"image, text = m + L W / sqrt(|L|) + {CLIP_SIGMA} e, per modality: W ~ N(0,1) (C x {CLIP_DIM}), m a "
            f"random direction of norm {CLIP_MEAN_NORM} shared by all rows, e ~ N(0,1)",
}
DEFAULT_MIR = Path("../shared/data/mirflickr25k")


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *stream])))


@dataclass
class ProxySource:
    """The rows of a proxy in source order: ``labels`` (N, C) uint8, ``tags`` (N, T) uint8 (None for kind clip),
    the card, and ``full_rows``: each row's position in the full-size matrices (None without ``--rows``)."""

    name: str
    kind: str
    seed: int
    labels: np.ndarray
    tags: np.ndarray | None
    card: dict
    full_rows: np.ndarray | None = None

    @property
    def scaled(self) -> bool:
        return self.full_rows is not None


def bernoulli_rates(freq: np.ndarray, iterations: int = 500) -> np.ndarray:
    """Per-label rates p such that, with rows without a label redrawn, P(label c) = freq[c]: P(c | some label) =
    p_c / (1 - prod(1 - p)), solved by fixed-point iteration."""
    p = np.asarray(freq, float).copy()
    for _ in range(iterations):
        p = freq * (1 - np.prod(1 - p))
    return p


def synth_labels(freq: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = _rng(seed, _LABELS)
    p = bernoulli_rates(np.asarray(freq, float))
    out = rng.random((n, len(p))) < p
    empty = np.flatnonzero(~out.any(1))
    while len(empty):  # every row carries a label, as in the releases
        out[empty] = rng.random((len(empty), len(p))) < p
        empty = empty[~out[empty].any(1)]
    return out.astype(np.uint8)


def _zipf_cdf(m: int) -> np.ndarray:
    w = 1.0 / np.arange(1, m + 1) ** TAG_ZIPF
    return np.cumsum(w) / w.sum()


def _draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, u), len(cdf) - 1)


def synth_tags(labels: np.ndarray, n_tags: int, mean_tags: float, seed: int) -> np.ndarray:
    """Binary tags (N, n_tags) uint8, each row's tags drawn from its labels' tag distributions (module docstring)."""
    rng = _rng(seed, _TAGS, 0)
    own = np.stack([rng.choice(n_tags, TAGS_PER_LABEL, replace=False) for _ in range(labels.shape[1])])
    background = rng.permutation(n_tags)  # background[0] is the most frequent background tag
    cdf_own, cdf_bg = _zipf_cdf(TAGS_PER_LABEL), _zipf_cdf(n_tags)
    out = np.zeros((len(labels), n_tags), np.uint8)
    for c, a in enumerate(range(0, len(labels), CHUNK_ROWS)):
        r = _rng(seed, _TAGS, c + 1)
        lab = labels[a:a + CHUNK_ROWS]
        m = len(lab)
        k = 1 + r.poisson(mean_tags - 1, m)
        slots = int(k.max())
        cum = lab.cumsum(1, dtype=np.int64)
        pick = (r.random((m, slots)) * cum[:, -1:]).astype(np.int64)  # the pick-th of the row's labels
        label = (cum[:, None, :] <= pick[:, :, None]).sum(-1)
        tag = np.where(r.random((m, slots)) < TAG_BACKGROUND, background[_draw(cdf_bg, r.random((m, slots)))],
                       own[label, _draw(cdf_own, r.random((m, slots)))])
        valid = np.arange(slots) < k[:, None]
        out[a + np.nonzero(valid)[0], tag[valid]] = 1
    return out


def proxy_source(name: str, kind: str, rows: int | None = None, mir: str | Path | None = None,
                 seed: int = 0) -> ProxySource:
    """Labels, tags and card of a proxy (before splitting and before any image feature)."""
    if name not in SHAPES:
        raise DataError(f"unknown proxy '{name}' (known: {', '.join(SHAPES)})")
    if kind not in KINDS:
        raise DataError(f"unknown proxy kind '{kind}' (known: {', '.join(KINDS)})")
    shape = SHAPES[name]
    if seed < 0:
        raise DataError(f"--seed {seed}: give a non-negative integer")
    if rows is not None and not 0 < rows < shape.rows:
        raise DataError(f"--rows {rows}: give a number between 1 and {shape.rows - 1:,} ({name} has "
                        f"{shape.rows:,} rows; leave --rows out for the full size)")
    card: dict = {"source": "synthetic (bitrieve data proxy)", "sha256": {}}
    if name == "mirflickr25k":
        from bitrieve.data.readers import djsrh_mat

        mir = Path(mir) if mir is not None else DEFAULT_MIR
        if not mir.is_dir():
            raise DataError(f"{mir}: no MIRFlickr-25K release directory; the mirflickr25k proxy reads the real labels "
                            "and tags from mirflickr25k-lall.mat (key LAll, 20,015 x 24) and mirflickr25k-yall.mat "
                            "(key YAll, 20,015 x 1,386) there (give the directory with --mir)")
        real = djsrh_mat.read(str(mir), fmt="mirflickr25k", labels_only=True)
        labels, tags = np.asarray(real.labels, np.uint8), np.asarray(real.inputs["text"], np.uint8)
        card.update(source=str(mir), sha256=real.card["sha256"], label_names=real.card["label_names"],
                    label_names_note=real.card["label_names_note"])
        label_source = f"real LAll and YAll of the MIRFlickr-25K release ({mir})"
    else:
        freq = np.array(NUS_FREQUENCIES) if name == "nuswide10" else coco_frequencies()
        labels = synth_labels(freq, shape.rows, seed)
        tags = None if kind == "clip" else synth_tags(labels, shape.tags, shape.tags_per_row, seed)
        card["label_names"] = NUS_LABELS if name == "nuswide10" else list(COCO_MINI_COUNTS)
        label_source = ("synthetic; per-label frequencies ASSUMED (no published figure found), label order = NUS-WIDE "
                        "top-10 frequency order" if name == "nuswide10" else
                        "synthetic; per-category frequencies from the 159 COCO-mini images (counts + 1/2) rescaled to "
                        "3.5 categories per image (Lin et al., arXiv:1405.0312, Sec. 5)")
        card["label_frequencies_target"] = [round(float(f), 6) for f in freq]
    full_rows = None
    if rows is not None:
        full_rows = np.sort(_rng(seed, _ROWS).choice(shape.rows, rows, replace=False))
        labels = labels[full_rows]
        tags = None if tags is None else tags[full_rows]
    n = len(labels)
    store_name = f"{name}-proxy-{kind}" + (f"-{n}" if full_rows is not None else "")
    text = ("512-d synthetic CLIP-shaped text features (replace the tags)" if kind == "clip" else
            f"{shape.tags:,}-d binary tags ({'real YAll' if name == 'mirflickr25k' else 'synthetic'})")
    card.update(
        name=store_name,
        version=f"PROXY: {n:,} rows shaped like {name}, synthetic {kind} image features (generator v"
                f"{GENERATOR_VERSION})" + (f", a seeded {n:,}-row subset" if full_rows is not None else ""),
        citation=f"PROXY of {shape.citation}",
        features={"image": {"kind": f"PROXY synthetic {kind}", "formula": FORMULAS[kind], "dtype": "float32",
                            "dim": CLIP_DIM if kind == "clip" else IMAGE_DIM},
                  "text": {"kind": text, "dtype": "float32" if kind == "clip" else
                           "uint8 in the store, float32 on load (binary tags)"}},
        proxy={"of": name, "kind": kind, "generator": FORMULAS[kind], "generator_version": GENERATOR_VERSION,
               "parameters": _parameters(kind, name), "generator_seed": seed, "rows": n,
               "rows_subset": None if full_rows is None else f"a seeded subset of the {shape.rows:,} full-size rows "
                                                              "(their positions: sidecar proxy_rows.json)",
               "label_source": label_source,
               "statement": f"PROXY: synthetic {'image and text' if kind == 'clip' else 'image'} features with the "
                            f"shape of {name}; never results on the real {name}, and nothing may be tuned on it"})
    return ProxySource(name, kind, seed, labels, tags, card, full_rows)


def _parameters(kind: str, name: str) -> dict:
    p: dict = {"chunk_rows": CHUNK_ROWS}
    if kind == "dense":
        p.update(dim=IMAGE_DIM, noise=DENSE_NOISE)
    elif kind == "sparse":
        p.update(dim=IMAGE_DIM, noise=SPARSE_NOISE, shift=SPARSE_SHIFT)
    else:
        p.update(dim=CLIP_DIM, sigma=CLIP_SIGMA, mean_norm=CLIP_MEAN_NORM)
    if name != "mirflickr25k" and kind != "clip":
        p.update(tags_per_row_mean=SHAPES[name].tags_per_row, tag_background=TAG_BACKGROUND,
                 tags_per_label=TAGS_PER_LABEL, tag_zipf=TAG_ZIPF)
    return p


def _weights(kind: str, n_labels: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """modality -> (W, mean vector or None)."""
    if kind != "clip":
        return {"image": (_rng(seed, _W, 0).standard_normal((n_labels, IMAGE_DIM), dtype=np.float32), None)}
    out = {}
    for i, m in enumerate(("image", "text")):
        rng = _rng(seed, _W, i)
        w = rng.standard_normal((n_labels, CLIP_DIM), dtype=np.float32)
        mean = rng.standard_normal(CLIP_DIM)
        out[m] = (w, (mean * CLIP_MEAN_NORM / np.linalg.norm(mean)).astype(np.float32))
    return out


def _features(kind: str, lab: np.ndarray, w: np.ndarray, mean: np.ndarray | None,
              rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal((len(lab), w.shape[1]), dtype=np.float32)
    # in float64, then rounded: the same float32 bytes whatever order the BLAS adds the label rows in
    x = (lab @ w.astype(np.float64)).astype(np.float32)
    if kind == "dense":
        noise *= DENSE_NOISE
        x += noise
        return np.maximum(x, 0, out=x)
    x /= np.sqrt(np.maximum(1.0, lab.sum(1, keepdims=True)))
    if kind == "sparse":
        noise *= SPARSE_NOISE
        x += noise
        x -= SPARSE_SHIFT
        return np.maximum(x, 0, out=x)
    noise *= CLIP_SIGMA
    x += noise
    x += mean
    return x


def generate(kind: str, labels: np.ndarray, seed: int, wanted: dict[str, np.ndarray],
             progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """modality -> part -> float32 features of the source rows ``wanted[part]`` (rows may repeat across parts).
    Generated chunk by chunk in source order and written straight into the outputs: no second copy."""
    from tqdm import tqdm

    weights = _weights(kind, labels.shape[1], seed)
    out = {m: {p: np.empty((len(r), w.shape[1]), np.float32) for p, r in wanted.items()}
           for m, (w, _) in weights.items()}
    order = {p: (np.argsort(r, kind="stable"), np.sort(r)) for p, r in wanted.items()}
    starts = range(0, len(labels), CHUNK_ROWS)
    for c, a in enumerate(tqdm(starts, disable=not progress, desc=f"proxy {kind} features", unit="chunk")):
        b = min(a + CHUNK_ROWS, len(labels))
        lab = labels[a:b].astype(np.float64)
        for i, (m, (w, mean)) in enumerate(weights.items()):
            x = _features(kind, lab, w, mean, _rng(seed, _NOISE, i, c))
            for p, (perm, srt) in order.items():
                lo, hi = np.searchsorted(srt, [a, b])
                out[m][p][perm[lo:hi]] = x[srt[lo:hi] - a]
    return out


def split_recipe(ps: ProxySource):
    from bitrieve.data.splits import get_split, scaled_split

    return scaled_split(ps.name, len(ps.labels)) if ps.scaled else get_split(ps.name)


def build_proxy(ps: ProxySource, split_seed: int = 0, dest: str | Path | None = None, progress: bool = True):
    """The store's content (`convert.Converted`): split by the dataset's recipe (scaled with ``--rows``; kind clip:
    laid out as UCMFH's three files, recipe ``official``), image features generated into the splits."""
    from bitrieve.atomic import check_free_space
    from bitrieve.data.convert import ConvertOptions, build_source
    from bitrieve.data.source import Source, validate_source
    from bitrieve.data.splits import get_split
    from bitrieve.data.types import CrossModalData, Split

    if split_seed < 0:
        raise DataError(f"--split-seed {split_seed}: give a non-negative integer")
    n = len(ps.labels)
    ids = np.arange(n, dtype=np.int64)
    opts = ConvertOptions(dest=None if dest is None else Path(dest), split_seed=split_seed, progress=progress)
    recipe = split_recipe(ps)
    rows_file: dict = {} if ps.full_rows is None else {
        "full_rows": ps.full_rows.tolist(), "full_rows_are": f"each proxy row's position in the full-size {ps.name} "
                                                            "matrices (proxy row = index)"}
    if ps.kind == "clip":
        drawn = recipe.split(Source({}, ps.labels, ids, ps.card), split_seed)
        parts = ("train", "query", "retrieval")
        feats = generate("clip", ps.labels, ps.seed, {p: drawn[p] for p in parts}, progress)
        rows = np.concatenate([drawn[p] for p in parts])
        src = Source({m: np.concatenate([feats[m][p] for p in parts]) for m in ("image", "text")}, ps.labels[rows],
                     np.arange(len(rows), dtype=np.int64), ps.card,
                     np.repeat(np.array(parts), [len(drawn[p]) for p in parts]))
        del feats
        src.card = {**ps.card, "proxy": {**ps.card["proxy"], "layout": {
            "as": "the UCMFH release's train.pkl / query.pkl / retrieval.pkl, in that order (train rows repeated in "
                  "retrieval); ids = position in that order", "rows_drawn_by": recipe.name,
            "description": recipe.description, "split_seed": split_seed,
            "layout_rows": "proxy_rows.json (the proxy row of each id)"}}}
        rows_file.update(layout_rows=rows.tolist())
        out = build_source(validate_source(src), "proxy", opts, recipe=get_split("official"))
        _record_measured(out.data)
        return out, {"proxy_rows.json": rows_file}
    src = validate_source(Source({"text": ps.tags}, ps.labels, ids, ps.card))  # binary tags: stored uint8
    out = build_source(src, "proxy", opts, recipe=recipe)
    del src
    if dest is not None:
        need = sum(len(r) for r in out.split_indices.values()) * IMAGE_DIM * 4
        check_free_space(Path(dest).parent, need, "canonical store", error=DataError)
    feats = generate(ps.kind, ps.labels, ps.seed, out.split_indices, progress)["image"]
    splits = {s: Split({"image": feats.pop(s), **sp.inputs}, sp.labels, sp.ids) for s, sp in out.data.splits.items()}
    out.data = CrossModalData(splits, out.data.card)
    _record_measured(out.data)
    return out, ({"proxy_rows.json": rows_file} if rows_file else {})


def _record_measured(data) -> None:
    """What the generator produced, measured on the retrieval split (every non-query row), into the card."""
    # a wall-clock time would make two builds with the same seeds differ in card.json (and in the card's sha256)
    data.card.pop("conversion_seconds", None)
    sp = data.splits["retrieval"]
    x = np.asarray(sp.inputs["image"])  # a streamed split array (data/store.py: RowSelection) is read here
    sample = x[:1000] / np.linalg.norm(x[:1000], axis=1, keepdims=True)
    cos = sample @ sample.T
    measured = {"on": "retrieval split", "image_zero_fraction": round(1 - np.count_nonzero(x) / x.size, 4),
                "image_mean_pairwise_cosine": round(float(cos[~np.eye(len(cos), dtype=bool)].mean()), 4),
                "image_min_pairwise_cosine": round(float(cos.min()), 4),
                "labels_per_row": round(float(sp.labels.sum(1).mean()), 4)}
    if data.card["proxy"]["kind"] != "clip":
        measured["tags_per_row"] = round(float(np.asarray(sp.inputs["text"]).sum(1).mean()), 4)
    data.card["proxy"] = {**data.card["proxy"], "measured": measured}


def check_release_layout(ps: ProxySource, directory: str | Path, overwrite: bool) -> list[Path]:
    """The files ``--release-layout`` will write; DataError before any work when they cannot be written."""
    from bitrieve.atomic import check_writable

    d = Path(directory)
    if ps.kind == "clip":
        files = [d / f"{p}.pkl" for p in ("train", "query", "retrieval")]
    else:
        pre = SHAPES[ps.name].prefix
        files = [d / f"{pre}-lall.mat", d / f"{pre}-yall.mat", d / f"{pre}-iall-vgg.mat"]
        size = len(ps.labels) * IMAGE_DIM * 4
        if size >= 2 ** 31:
            raise DataError(f"--release-layout: XAll would be {len(ps.labels):,} x {IMAGE_DIM} float32 = "
                            f"{size / 2 ** 30:.1f} GiB, over the 2 GiB per-variable limit of the MATLAB v5 files "
                            "written here; give --rows")
    existing = [f.name for f in files if f.exists()]
    if existing and not overwrite:
        raise DataError(f"{d}: {', '.join(existing)} already exist (pass --overwrite to replace them)")
    check_writable(d, "release layout directory", error=DataError)
    return files


def write_release_layout(ps: ProxySource, data, directory: str | Path, progress: bool = False) -> list[Path]:
    """The proxy as the real release files, so the readers can be exercised on it: dense/sparse the DCMH/DJSRH
    ``.mat`` files (LAll, YAll, XAll; readers/djsrh_mat.py), clip UCMFH's three pickles (readers/ucmfh_pkl.py)."""
    from bitrieve.atomic import write_with_atomic

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    if ps.kind == "clip":
        for part in ("train", "query", "retrieval"):
            sp = data.splits[part]
            obj = {"image": np.asarray(sp.inputs["image"]), "text": np.asarray(sp.inputs["text"]),
                   "label": sp.labels}  # plain arrays (a streamed split array is read here)

            def dump(tmp: str, obj=obj) -> None:
                with open(tmp, "wb") as f:
                    pickle.dump(obj, f, protocol=4)

            written.append(write_with_atomic(d / f"{part}.pkl", dump))
        return written
    from scipy.io import savemat

    pre = SHAPES[ps.name].prefix
    x = generate(ps.kind, ps.labels, ps.seed, {"all": np.arange(len(ps.labels))}, progress)["image"]["all"]
    for suffix, key, arr in (("lall", "LAll", ps.labels), ("yall", "YAll", ps.tags), ("iall-vgg", "XAll", x)):
        written.append(write_with_atomic(d / f"{pre}-{suffix}.mat", lambda tmp, k=key, a=arr: savemat(tmp, {k: a})))
    return written
