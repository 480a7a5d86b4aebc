"""Release -> `CrossModalData` ready for the canonical store: read, validate, split by a split recipe, materialise.

Materialising means: lazy images become features (when an extractor is given) or uint8 pixels; caption text becomes
token ids (vocabulary from the training split only) or a bag-of-words.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bitrieve.data.captions import END, PAD, START, UNK, bag_of_words, build_vocab, encode_tokens, top_words
from bitrieve.data.extras import SplitWithExtras
from bitrieve.data.images import ImageSource, PixelRows
from bitrieve.data.splits import SplitRecipe, get_split
from bitrieve.data.readers import READERS, read_source
from bitrieve.data.source import Source, validate_source
from bitrieve.data.types import CrossModalData, DataError, Split


@dataclass
class ConvertOptions:
    dest: Path | None = None            # the store to write: its free space is checked before decoding
    split: str | None = None            # split recipe (data/splits.py); default: the reader's
    split_seed: int = 0
    empty_labels: str = "fail"          # drop | fail | keep
    image_size: int | None = None       # resize raw images to size x size when storing pixels
    text: str = "tokens"                # caption text: tokens | bow
    vocab_threshold: int = 4            # VSE++ default
    bow_size: int = 1000
    extractor: Any = None               # a features.ImageExtractor, or None for pixels
    work_dir: str | Path | None = None  # chunk files of a resumable extraction
    batch_size: int = 64
    progress: bool = True
    reader_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Converted:
    data: CrossModalData
    split_indices: dict[str, np.ndarray]
    sidecars: dict[str, Any]


def _image_rows(img: ImageSource, needed: np.ndarray, opts: ConvertOptions) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """The images of the source rows ``needed``, each distinct image once (caption rows repeat their image), as an
    array-like with one row per distinct image; for every source row its row there (-1: not needed); the card entry.

    Pixels stay lazy (`PixelRows`): they are decoded block by block while the split files are written, so no
    array of all the images exists. Features are extracted whole (the extractor's resumable chunk files), then
    split."""
    if img.refs is not None:
        _, first, inverse = np.unique(np.array(img.refs)[needed], return_index=True, return_inverse=True)
        order = needed[first]  # decoded in sorted file order
    else:
        order, inverse = needed, np.arange(len(needed))
    where = np.full(len(img), -1, dtype=np.int64)
    where[needed] = inverse.reshape(-1)
    if opts.extractor is not None:
        from bitrieve.data.features import extract_images

        arr = extract_images(img[order], opts.extractor, work_dir=opts.work_dir, batch_size=opts.batch_size,
                             progress=opts.progress)
        return arr, where, opts.extractor.describe()
    info = {"kind": "pixels", "dtype": "uint8", "layout": "N x C x H x W", "resized_to": opts.image_size,
            "description": img.description}
    return PixelRows(img, order, opts.image_size, progress=opts.progress), where, info


def _check_space(inputs: dict[str, Any], n_rows: int, opts: ConvertOptions) -> None:
    """Before minutes of decoding or extraction: is there room for the store? (An estimate from what is known
    now: features are n x dim float32, pixels n x their first image's shape uint8, arrays their own size.)"""
    if opts.dest is None:
        return
    from bitrieve.atomic import check_free_space

    need = 0
    for a in inputs.values():
        if hasattr(a, "read_rows"):  # a lazy v7.3 array or pixels: its row size in the stored dtype
            need += int(np.prod(a.shape[1:])) * np.dtype(getattr(a, "out_dtype", a.dtype)).itemsize * n_rows
        elif not isinstance(a, ImageSource):
            need += int(np.asarray(a[:1]).nbytes) * n_rows if len(a) else 0
        elif opts.extractor is not None:
            need += n_rows * int(getattr(opts.extractor, "dim", 0)) * 4
    check_free_space(opts.dest.parent, need, "canonical store", error=DataError)


class _Streamed(dict):
    """The inputs of a converted split as `RowSelection`s: rows and values are checked while the store is written
    (validate_source checked the in-memory arrays already)."""

    checked_on_open = True


STREAM_MIN_BYTES = 64 << 20  # in-memory release arrays at least this large are written to the store by streaming


def _streamed(a) -> bool:
    """Lazy arrays (v7.3 read by row blocks, pixels decoded by blocks) always, large in-memory ones too (no
    per-split copies)."""
    return hasattr(a, "read_rows") or a.nbytes >= STREAM_MIN_BYTES


def build(fmt: str, path: str | Path, opts: ConvertOptions) -> Converted:
    if fmt not in READERS:
        raise DataError(f"unknown format '{fmt}' (known: {', '.join(READERS)})")
    t0 = time.time()
    src: Source = read_source(fmt, str(path), **opts.reader_options)
    src = validate_source(src, opts.empty_labels)
    return build_source(src, fmt, opts, t0=t0)


def build_source(src: Source, fmt: str, opts: ConvertOptions, recipe: SplitRecipe | None = None,
                 t0: float | None = None) -> Converted:
    """`build` from an already read and validated `Source` (e.g. one decoded once and split by two recipes);
    ``recipe``: a split recipe object instead of ``opts.split`` (a scaled-down copy for smoke tests)."""
    t0 = time.time() if t0 is None else t0
    recipe = recipe or get_split(opts.split or READERS[fmt].default_split)
    indices = recipe.split(src, opts.split_seed if recipe.seeded else None)
    empty = [name for name, idx in indices.items() if len(idx) == 0]
    if empty:  # a protocol that cannot be met on this data: say which split and how many rows there are
        raise DataError(f"split recipe '{recipe.name}' on {len(src)} rows leaves the split(s) {empty} empty "
                        f"(sizes: {', '.join(f'{k} {len(v)}' for k, v in indices.items())})")
    card = dict(src.card)
    card["format"] = fmt
    card["protocol"] = {"name": recipe.name, "citation": recipe.citation, "description": recipe.description,
                        "split_seed": opts.split_seed if recipe.seeded else None,
                        "indices_file": "split_indices.npz",
                        "indices_are": "row positions in the validated source (after any dropped empty-label rows)"}
    card["split_seed"] = opts.split_seed if recipe.seeded else None
    card.setdefault("features", {})
    sidecars: dict[str, Any] = {}

    inputs_all: dict[str, Any] = {}
    row_of: dict[str, np.ndarray] = {}  # image modalities: source row -> row of its (distinct) image
    needed = np.unique(np.concatenate(list(indices.values())))
    pixels = {m: _image_rows(a, needed, opts) for m, a in src.inputs.items()
              if isinstance(a, ImageSource) and opts.extractor is None}  # lazy: one image decoded for its shape
    _check_space({**src.inputs, **{m: p[0] for m, p in pixels.items()}}, len(needed), opts)
    for m, a in src.inputs.items():
        if isinstance(a, ImageSource):
            inputs_all[m], row_of[m], card["features"][m] = pixels[m] if m in pixels else _image_rows(a, needed, opts)
        else:
            inputs_all[m] = a if hasattr(a, "read_rows") else np.asarray(a)  # a v7.3 array stays lazy
    extras = dict(src.extras)
    if "text" not in inputs_all and "caption" in extras:
        train_caps = extras["caption"][indices["train"]]
        if opts.text == "tokens":
            vocab = build_vocab(train_caps, opts.vocab_threshold)
            tokens, lengths = encode_tokens(extras["caption"], vocab)
            inputs_all["text"] = tokens
            extras["text_lengths"] = lengths
            sidecars["vocab.json"] = vocab
            card["features"]["text"] = {"kind": "tokens", "dtype": "int32", "pad_id": PAD, "start_id": START,
                                        "end_id": END, "unk_id": UNK, "vocab_file": "vocab.json",
                                        "vocab_size": len(vocab),
                                        "vocab_threshold": opts.vocab_threshold, "vocab_from": "train split only",
                                        "lengths": "side column text_lengths (tokens incl. <start>/<end>)"}
        elif opts.text == "bow":
            vocab = top_words(train_caps, opts.bow_size)
            inputs_all["text"] = bag_of_words(extras["caption"], vocab)
            sidecars["vocab.json"] = vocab
            card["features"]["text"] = {"kind": "binary bag-of-words", "dtype": "float32",
                                        "width": len(vocab) - 4, "vocab_file": "vocab.json (first 4 are specials)",
                                        "vocab_from": f"the {opts.bow_size} most frequent train-split words"}
        elif opts.text == "clip":
            if not hasattr(opts.extractor, "encode_text"):
                raise DataError("--text clip needs --model clip-vit-b32")
            caps = [str(c) for c in extras["caption"]]
            inputs_all["text"] = np.concatenate([opts.extractor.encode_text(caps[i:i + 256])
                                                 for i in range(0, len(caps), 256)]) if caps else np.zeros((0, 512))
            card["features"]["text"] = {"kind": "features", "extractor": "clip-vit-b32 text", "dim": 512,
                                        "weights": opts.extractor.weights_desc}
        else:
            raise DataError(f"--text '{opts.text}': choose tokens, bow or clip")

    from bitrieve.data.store import RowSelection

    splits: dict[str, Split] = {}
    for name, rows in indices.items():
        # each split's arrays are written by streaming (data/store.py: one pass over each source array, by row
        # blocks), never copied whole: the release array and its per-split copies are not in memory together
        src_rows = {m: row_of[m][rows] if m in row_of else rows for m in inputs_all}
        ins = {m: RowSelection(a, src_rows[m], getattr(a, "out_dtype", a.dtype),
                               f"modality '{m}'" + (f" ({a.path}, key '{a.key}')" if hasattr(a, "key") else ""))
               if _streamed(a) else a[src_rows[m]] for m, a in inputs_all.items()}
        if any(isinstance(a, RowSelection) for a in ins.values()):
            ins = _Streamed(ins)
        ex = {k: a[rows] for k, a in extras.items()}
        splits[name] = (SplitWithExtras(ins, src.labels[rows], src.ids[rows], ex) if ex
                        else Split(ins, src.labels[rows], src.ids[rows]))
    card["counts"] = {k: len(v) for k, v in splits.items()}
    card["conversion_seconds"] = round(time.time() - t0, 2)
    return Converted(CrossModalData(splits, card), indices, sidecars)
