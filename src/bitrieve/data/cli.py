"""`bitrieve data convert`, `bitrieve data info`, `bitrieve features` (registered by bitrieve/cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bitrieve.options import int_option


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    from bitrieve.data.splits import SPLITS
    from bitrieve.data.readers import READERS

    fmts = ", ".join(READERS)
    data = subparsers.add_parser("data", help="convert releases into canonical stores; inspect stores")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    conv = dsub.add_parser("convert", help="release files -> canonical store directory",
                           description=f"Formats: {fmts}. Split recipes: {', '.join(SPLITS)}.")
    _add_convert_args(conv)
    conv.set_defaults(func=_convert)

    info = dsub.add_parser("info", help="print a store's card and label statistics")
    info.add_argument("store")
    info.add_argument("--json", action="store_true", help="print the card (with per-split `counts`) as JSON")
    info.set_defaults(func=_info)

    verify = dsub.add_parser("verify", help="check every store file against the sha256 in its card.json",
                             description="Recomputes the sha256 of every file listed in STORE/card.json "
                                         "(store_files_sha256) and reads every split; exit 0 when all match, 2 naming "
                                         "the first file that differs.")
    verify.add_argument("store")
    verify.set_defaults(func=_verify)

    from bitrieve.data.proxy import KINDS, SHAPES

    prox = dsub.add_parser("proxy", help="a PROXY store: a benchmark's shape with synthetic features (never its "
                           "results)", description="Builds a store with NAME's row count, split recipe, label/tag "
                           "widths and label statistics and SYNTHETIC image features (kind clip: image and text); its "
                           "card, runs, tables and figures say PROXY. Sources of every figure: docs/datasets.md, "
                           "'Proxies'.")
    prox.add_argument("name", choices=list(SHAPES), metavar="NAME", help=" | ".join(SHAPES))
    prox.add_argument("--kind", required=True, choices=KINDS, help="dense (relu, all-positive cosines) | sparse "
                      "(VGG-fc7-like, ~80%% zeros) | clip (512-d image + text, UCMFH layout)")
    prox.add_argument("--to", required=True, help="store directory to create")
    prox.add_argument("--rows", type=int_option(1), default=None, help="a seeded N-row subset with the split recipe scaled to N")
    prox.add_argument("--mir", default=None, help="mirflickr25k: the release directory with the real LAll/YAll "
                      "(default ../shared/data/mirflickr25k, relative to the working directory)")
    prox.add_argument("--release-layout", default=None, metavar="DIR",
                      help="also write the proxy as the release's files (DCMH/DJSRH .mat, or UCMFH pickles) in DIR")
    prox.add_argument("--seed", type=int_option(0), default=0, help="generator seed (features, synthetic labels, --rows subset)")
    prox.add_argument("--split-seed", type=int_option(0), default=0, help="seed of the split recipe")
    prox.add_argument("--overwrite", action="store_true")
    prox.add_argument("--no-progress", action="store_true")
    prox.set_defaults(func=_proxy)
    data.set_defaults(func=lambda a: (data.print_help(), 2)[1])

    feat = subparsers.add_parser("features", help="extract image features (EfficientNet-Lite0, CLIP, AlexNet/VGG-19 "
                                 "fc7) while converting a release into a store")
    _add_convert_args(feat)
    feat.add_argument("--model", required=True, help="effnet-lite0 | clip-vit-b32 | alexnet-fc7 | vgg19-fc7")
    feat.add_argument("--weights", default=None, help="weights file (default: the library's cache / packaged file)")
    feat.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    feat.add_argument("--until", default=None, metavar="blocks.K",
                      help="effnet-lite0: store the activations entering stage K (frozen earlier stages) instead of "
                           "the pooled feature, for GreedyHash's trainable_from: blocks.K")
    feat.add_argument("--batch-size", type=int_option(1), default=64)
    feat.add_argument("--work-dir", default=None, help="chunk files for resuming (default: STORE.work next to --to)")
    feat.set_defaults(func=_features)


def _add_convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="fmt", required=True, help="release format")
    p.add_argument("src", help="release file or directory")
    p.add_argument("--to", required=True, help="store directory to create")
    p.add_argument("--split", "--protocol", dest="split", default=None, metavar="RECIPE",
                   help="split recipe (data/splits.py; default: the format's standard one). --protocol: its old name")
    p.add_argument("--split-seed", type=int_option(0), default=0, help="seed of the split (separate from training seeds)")
    p.add_argument("--empty-labels", choices=("drop", "fail", "keep"), default="fail",
                   help="rows without any label: drop them (count reported), fail, or keep")
    p.add_argument("--image-size", type=int_option(1), default=None, help="resize raw images to SIZE x SIZE")
    p.add_argument("--text", choices=("tokens", "bow", "clip"), default="tokens",
                   help="caption text: token ids (VSE++), binary bag-of-words, or CLIP text features "
                        "(with --model clip-vit-b32)")
    p.add_argument("--vocab-threshold", type=int_option(1), default=4, help="min count of a word in the vocabulary (VSE++: 4)")
    p.add_argument("--bow-size", type=int_option(1), default=1000, help="--text bow: number of most frequent train words")
    p.add_argument("--labels-only", action="store_true",
                   help="MIRFlickr/NUS family: load labels + tags without the image file (inspection only)")
    p.add_argument("--prefix", default=None, help="file name prefix of a .mat family release (e.g. mirflickr25k)")
    p.add_argument("--images", default=None, help="image directory for formats whose release holds no images")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")


def _options(args: argparse.Namespace, extractor=None):
    from bitrieve.data.convert import ConvertOptions

    reader_options = {}
    if args.labels_only:
        reader_options["labels_only"] = True
    if args.prefix:
        reader_options["prefix"] = args.prefix
    if args.images:
        reader_options["images"] = args.images
    work = getattr(args, "work_dir", None)
    if extractor is not None and work is None:
        to = Path(args.to)
        work = to.parent / f".{to.name}.work"
    return ConvertOptions(dest=Path(args.to), split=args.split, split_seed=args.split_seed,
                          empty_labels=args.empty_labels,
                          image_size=args.image_size, text=args.text, vocab_threshold=args.vocab_threshold,
                          bow_size=args.bow_size,
                          extractor=extractor, work_dir=work, batch_size=getattr(args, "batch_size", 64),
                          progress=not args.no_progress, reader_options=reader_options)


def _save(args: argparse.Namespace, opts) -> int:
    from bitrieve.data.convert import build
    from bitrieve.data.store import check_store_target, save_store

    check_store_target(args.to, args.overwrite)  # before minutes of decoding or extraction
    out = build(args.fmt, args.src, opts)
    path = save_store(out.data, args.to, split_indices=out.split_indices, sidecars=out.sidecars,
                      overwrite=args.overwrite)
    print(f"wrote {path}: " + ", ".join(f"{k} {v}" for k, v in out.data.card["counts"].items()))
    for note in out.data.card.get("notes", []):  # e.g. a caption release converted without --images: text only
        print(f"note: {note}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    return _save(args, _options(args))


def _features(args: argparse.Namespace) -> int:
    from bitrieve.atomic import check_writable
    from bitrieve.parts.extractors import make_extractor
    from bitrieve.data.store import check_store_target
    from bitrieve.data.types import DataError

    check_store_target(args.to, args.overwrite)  # before loading weights
    if args.work_dir is not None:
        check_writable(args.work_dir, "feature work directory", error=DataError)
    ext = make_extractor(args.model, weights=args.weights, device=args.device, image_size=args.image_size,
                         until=args.until)
    opts = _options(args, ext)
    opts.image_size = None  # the extractor resizes
    rc = _save(args, opts)
    if rc == 0 and args.work_dir is None:  # finished: the default chunk directory is no longer needed
        import shutil

        shutil.rmtree(opts.work_dir, ignore_errors=True)
    return rc


def _proxy(args: argparse.Namespace) -> int:
    from bitrieve.data.proxy import build_proxy, check_release_layout, proxy_source, write_release_layout
    from bitrieve.data.store import check_store_target, save_store

    check_store_target(args.to, args.overwrite)  # before reading or generating anything
    ps = proxy_source(args.name, args.kind, rows=args.rows, mir=args.mir, seed=args.seed)
    if args.release_layout:
        check_release_layout(ps, args.release_layout, args.overwrite)
    out, sidecars = build_proxy(ps, split_seed=args.split_seed, dest=args.to, progress=not args.no_progress)
    path = save_store(out.data, args.to, split_indices=out.split_indices, sidecars=sidecars, overwrite=args.overwrite)
    card = out.data.card
    print(f"wrote {path} ({card['name']}): " + ", ".join(f"{k} {v}" for k, v in card["counts"].items()))
    print(card["proxy"]["statement"])
    if args.release_layout:
        files = write_release_layout(ps, out.data, args.release_layout, progress=not args.no_progress)
        print(f"wrote release layout {args.release_layout}: {', '.join(f.name for f in files)}")
    return 0


def label_stats(labels: np.ndarray, names: list[str] | None) -> dict:
    if labels.shape[1] == 0:
        return {"rows": int(labels.shape[0]), "num_labels": 0}
    per_row = labels.sum(1)
    per_class = labels.sum(0)
    names = names or [str(i) for i in range(labels.shape[1])]
    return {"rows": int(labels.shape[0]), "label_cardinality": round(float(per_row.mean()), 4),
            "empty_label_rows": int((per_row == 0).sum()), "max_labels_per_row": int(per_row.max(initial=0)),
            "class_counts": {n: int(c) for n, c in zip(names, per_class)}}


def _info(args: argparse.Namespace) -> int:
    from bitrieve.data.store import read_card, read_labels

    card = read_card(args.store)
    if args.json:
        json.dump(card, sys.stdout, indent=1)
        print()
        return 0
    for k, v in card.items():
        if k in ("store_files_sha256",):
            continue
        print(f"{k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}")
    for split in card["counts"]:
        labels = read_labels(args.store, split)
        print(f"labels[{split}]: " + json.dumps(label_stats(labels, card.get("label_names"))))
    return 0


def _verify(args: argparse.Namespace) -> int:
    import time

    from bitrieve.data.store import check_values, load_store, verify_store

    t0 = time.perf_counter()
    names = verify_store(args.store)
    data = load_store(args.store, verify=False)  # every split parses and passes validation
    check_values(data)  # every array of every split opened and read (in row chunks)
    size = sum((Path(args.store) / n).stat().st_size for n in names)
    print(f"{args.store}: {len(names)} files verified against card.json ({', '.join(names)}; {size / 2**20:,.1f} MiB, "
          f"{time.perf_counter() - t0:.2f} s); splits " + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items()))
    return 0
