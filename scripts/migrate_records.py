"""Make stored run directories portable: no absolute machine path in config.yaml, results.json or env.json.

    python scripts/migrate_records.py [ROOT ...]            # rewrite (default ROOT: results)
    python scripts/migrate_records.py --check [ROOT ...]    # exit 1 if anything would change (a test runs this)

What it rewrites, in one pass over every run directory under ROOT (a directory holding config.yaml, env.json or
results.json):

- config.yaml ``data: /any/path/stores/NAME`` -> ``data: stores/NAME`` (the convention of configs/*.yaml; a run
  directory finds its store from any working directory through the parents of the run directory or
  ``$BITRIEVE_STORES``, card-checked: engine/runs.resolve_run_data). Only that line of the file changes.
- ``config_sha256`` (results.json and state.json): the hash covers ``data``, so it is recomputed with
  ``RunConfig.sha256`` -- only for a run whose stored hash is the recomputation of its config.yaml as it was (else
  the run is refused, nothing of it written), so the record stays what the sweep's "finished run of the same config"
  check and a recomputation from config.yaml agree on.
- ``env.argv`` (results.json and env.json) with the rule of engine/runs.portable_argv, the working directory taken
  as the checkout the program ran from (``<checkout>/src/bitrieve/__main__.py``): the program as ``bitrieve``, a path
  under the checkout relative to it (``--out /x/main/results/r/b12-s0`` -> ``results/r/b12-s0``), any other absolute
  path as ``.../<last two parts>``; a ``KEY=/abs`` argument (``--set data=/x/stores/NAME``) the same way, ``data``
  by the store rule above.

Every rewritten results.json and env.json gets an entry in its ``migrations`` list (record.Migration: date, this
script, one line per change, the config hash before); old values are left to git history (they are the machine
paths). No number other than the config hash changes: the script compares each record before and after, every key
but ``config_sha256``, ``env.argv`` and ``migrations``, and validates it as a run record. JSON files keep their
indentation; each file is written atomically. Running it again changes nothing. An interrupted run leaves a run
directory half migrated (its hash check then refuses it): restore that directory from git and run again.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import re
import sys
from pathlib import Path

import yaml

from bitrieve.atomic import write_bytes_atomic
from bitrieve.config import ConfigError, parse_config
from bitrieve.engine.runs import portable_argv
from bitrieve.record import RECORD_FILE, RecordError, record_from_dict

SCRIPT = "scripts/migrate_records.py"
DATA_LINE = re.compile(r"^data: *(.*)$", re.M)
NO_CHECKOUT = Path("/no-checkout-known")  # portable_argv's working directory when the checkout is unknown


class MigrationError(Exception):
    """A run directory this script cannot migrate safely; nothing of it is written."""


def store_spec(path: str) -> str:
    """'/x/y/stores/NAME' -> 'stores/NAME' (from the last 'stores' folder on)."""
    parts = Path(path).parts
    at = [i for i, p in enumerate(parts[:-1]) if p == "stores"]
    if not at:
        raise MigrationError(f"data '{path}' is absolute and not under a 'stores' folder: no portable form to give it")
    return "/".join(parts[at[-1]:])


def checkout_of(program: str) -> Path | None:
    """The checkout a run's program ran from (``<checkout>/src/bitrieve/__main__.py``), or None."""
    p = Path(program)
    if p.is_absolute() and p.name == "__main__.py" and p.parent.name == "bitrieve" and p.parent.parent.name == "src":
        return p.parents[2]
    return None


def migrate_argv(argv: list[str]) -> list[str]:
    """``argv`` with no absolute path (see the module docstring); an entry without one comes back unchanged (a
    relative ``.venv/bin/bitrieve`` stays), so a portable argv comes back as it was."""
    cwd = (checkout_of(argv[0]) if argv else None) or NO_CHECKOUT  # never this machine's working directory
    args = list(argv)
    for i, a in enumerate(args[1:], 1):
        key, eq, value = a.partition("=")
        if eq and not Path(a).is_absolute() and Path(value).is_absolute():
            new = store_spec(value) if key == "data" else portable_argv(["bitrieve", value], cwd)[1]
            args[i] = f"{key}={new}"
    portable = portable_argv(args, cwd)
    return [p if Path(a).is_absolute() else a for a, p in zip(args, portable)]  # relative entries as they were


def config_hash(text: str, source: str) -> str:
    return parse_config(yaml.safe_load(text) or {}, source).sha256()


def _read_json(path: Path) -> tuple[dict, int | None, str]:
    """A JSON file, its indentation and its ending (written back the same way)."""
    text = path.read_text()
    m = re.match(r"\{\n( +)", text)
    return json.loads(text), (len(m.group(1)) if m else None), ("\n" if text.endswith("\n") else "")


def _json_bytes(obj: dict, indent: int | None, end: str) -> bytes:
    return (json.dumps(obj, indent=indent) + end).encode("utf-8")


def plan_run(run: Path, date: str) -> tuple[dict[Path, bytes], list[str]]:
    """The files to write for one run directory (path -> new bytes) and the changes in words; ({}, []) when the run
    is portable already. Raises MigrationError when the run cannot be migrated safely."""
    writes: dict[Path, bytes] = {}
    changes: list[str] = []
    cfg_path, rec_path, env_path, state_path = (run / n for n in ("config.yaml", RECORD_FILE, "env.json", "state.json"))
    rec = _read_json(rec_path) if rec_path.is_file() else None
    env = _read_json(env_path) if env_path.is_file() else None

    old_sha = new_sha = None
    if cfg_path.is_file():
        text = cfg_path.read_text()
        data = (yaml.safe_load(text) or {}).get("data")
        if isinstance(data, str) and Path(data).is_absolute():
            new_data = store_spec(data)
            lines = [m for m in DATA_LINE.finditer(text) if yaml.safe_load(m.group(1)) == data]
            if len(lines) != 1:
                raise MigrationError(f"{cfg_path}: expected one top-level 'data: {data}' line, found {len(lines)}")
            m = lines[0]
            new_text = text[:m.start()] + f"data: {new_data}" + text[m.end():]
            if yaml.safe_load(new_text) != {**yaml.safe_load(text), "data": new_data}:
                raise MigrationError(f"{cfg_path}: rewriting the data line changed more than 'data'")
            try:
                old_sha, new_sha = config_hash(text, str(cfg_path)), config_hash(new_text, str(cfg_path))
            except ConfigError as e:
                raise MigrationError(f"{cfg_path}: does not load, so its config hash cannot be recomputed: {e}")
            stored = rec[0]["config_sha256"] if rec else None
            if stored is not None and stored != old_sha:
                raise MigrationError(f"{rec_path}: config_sha256 {stored[:12]} is not the hash of config.yaml "
                                     f"({old_sha[:12]}): not migrated (a half-migrated run: restore it from git)")
            writes[cfg_path] = new_text.encode("utf-8")
            changes.append(f"config.yaml data -> {new_data} (was an absolute path)")
            changes.append(f"config_sha256 -> {new_sha} (the hash covers data)")
            if state_path.is_file():
                state, indent, end = _read_json(state_path)
                if state.get("config_sha256") != old_sha:
                    raise MigrationError(f"{state_path}: config_sha256 is not the hash of config.yaml: not migrated")
                writes[state_path] = _json_bytes({**state, "config_sha256": new_sha}, indent, end)

    argv = (rec[0].get("env", {}) if rec else env[0] if env else {}).get("argv")
    new_argv = migrate_argv(argv) if isinstance(argv, list) else argv
    for i, (a, b) in enumerate(zip(argv or [], new_argv or [])):
        if a != b:
            changes.append(f"env.argv[{i}] -> {b} (was an absolute path)")
    if not changes:
        return {}, []

    note = {"date": date, "by": SCRIPT, "changes": changes}
    if old_sha is not None:
        note["config_sha256_before"] = old_sha
    if rec:
        obj, indent, end = rec
        new = copy.deepcopy(obj)
        if new_sha is not None:
            new["config_sha256"] = new_sha
        if isinstance(argv, list):
            new["env"]["argv"] = new_argv
        new["migrations"] = [*obj.get("migrations", []), note]
        strip = lambda d: {k: (strip(v) if k == "env" else v) for k, v in d.items()  # noqa: E731
                           if k not in ("config_sha256", "migrations", "argv")}
        if strip(new) != strip(obj):
            raise MigrationError(f"{rec_path}: the migration would change more than paths and the config hash")
        try:
            record_from_dict(new, str(rec_path))
        except RecordError as e:
            raise MigrationError(f"{rec_path}: not a valid run record after the migration: {e}")
        writes[rec_path] = _json_bytes(new, indent, end)
    if env:
        obj, indent, end = env
        env_argv = obj.get("argv")
        new_env = {**obj, "argv": migrate_argv(env_argv) if isinstance(env_argv, list) else env_argv}
        if new_env != obj or rec is None:
            new_env["migrations"] = [*obj.get("migrations", []), note]
            writes[env_path] = _json_bytes(new_env, indent, end)
    return writes, changes


def run_dirs(roots: list[Path]) -> list[Path]:
    names = ("config.yaml", "env.json", RECORD_FILE)
    return sorted({p.parent for root in roots for n in names for p in root.rglob(n)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("roots", nargs="*", default=["results"], help="folders of run directories (default: results)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything would change")
    ap.add_argument("--date", default=datetime.date.today().isoformat(), help="the date in each migration note")
    args = ap.parse_args(argv)
    roots = [Path(r) for r in args.roots]
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        print(f"migrate_records: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    counts = {"runs": 0, "files": 0, "config.yaml data": 0, "config_sha256": 0, "env.argv entries": 0}
    errors = []
    for run in run_dirs(roots):
        try:
            writes, changes = plan_run(run, args.date)
        except MigrationError as e:
            errors.append(str(e))
            continue
        if not writes:
            continue
        counts["runs"] += 1
        counts["files"] += len(writes)
        counts["config.yaml data"] += sum(c.startswith("config.yaml data") for c in changes)
        counts["config_sha256"] += sum(c.startswith("config_sha256") for c in changes)
        counts["env.argv entries"] += sum(c.startswith("env.argv") for c in changes)
        if args.check:
            print(f"{run}: would change: {'; '.join(changes)}")
            continue
        for path in sorted(writes, key=lambda p: p.name == RECORD_FILE):  # the record last
            write_bytes_atomic(path, writes[path])
    for e in errors:
        print(f"migrate_records: {e}", file=sys.stderr)
    verb = "would change" if args.check else "changed"
    print(f"migrate_records: {verb} {counts['files']} files in {counts['runs']} run directories: "
          + ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("runs", "files")))
    if errors:
        return 2
    return 1 if args.check and counts["runs"] else 0


if __name__ == "__main__":
    sys.exit(main())
