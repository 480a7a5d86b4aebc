"""Executable documentation: every fenced block of README.md and docs/**/*.md, parsed, classified and run.

The rules a doc follows (docs/writing-docs.md says the same for writers):

- Every fenced block names its language. ``bash`` (``sh``, ``shell``, ``console``) and ``python`` (``py``) blocks
  are run; ``text``, ``json``, ``yaml`` ... blocks are not (layouts, synopses, outputs). A ``text`` line that looks
  like a runnable command (``bitrieve ...`` without a placeholder such as ``CONFIG``, ``[--flag]`` or ``...``) is an
  error: it would escape the tests.
- A shell block is a sequence of commands (``\\`` continues a line; full-line comments are skipped). Each command
  runs verbatim with bash, in order, in a temporary copy of the repository (tracked and untracked files; ``src`` is
  the checkout's, read-only by use), with ``bitrieve``/``python`` and ``.venv/bin/{bitrieve,python}`` resolving to
  the interpreter running the tests and one CPU thread (as the stored runs). ``../shared`` is the project's shared
  data when present. Nothing in the repository changes.
- ``[needs: WHAT]`` in a command's trailing comment (or a python block's comment) marks what cannot run here (a
  GPU, CLIP or AlexNet weights, a dataset we do not have). Such a command is only checked for syntax: its flags are
  parsed by bitrieve's own argument parser (what ``--help`` describes) and its config is validated; scripts and
  make targets must exist. ``make test`` (this suite itself) is checked the same way.
- A python block whose first line is ``# excerpt of PATH`` quotes a source file: every code line of it must occur
  in PATH (so the quote cannot drift from the code); it is not run.
- Speed classes. *Slow* commands take minutes: training a method that has epochs, sweeps, ``demo``, the results
  page, figures, dataset conversion and feature extraction, benchmarks, python blocks that train. The default
  suite runs each doc's other commands in order and skips the slow ones; the ``slow`` test runs every command, with
  the training shortened (``--set params.epochs=1`` and the like, ``demo --epochs 1``, benchmark ``--quick``
  sizes) while the doc shows the full command.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
PYTHON_LANGS = {"python", "py"}
QUIET_LANGS = {"text", "json", "yaml", "yml", "toml", "csv", "diff", "markdown", "md", "ini", "cfg", "latex", "tex"}
NEEDS = re.compile(r"\[needs:\s*([^\]]+)\]")
EXCERPT = re.compile(r"^#\s*excerpt of\s+(\S+)")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)")
COMMAND_WORDS = ("bitrieve ", "python ", "python3 ", ".venv/bin/", "make ", "scripts/", "torchrun ", "pip ")
SELF = {("make", "test")}  # the suite itself: checked, never run from inside it (nor is any pytest command)
# `data convert` formats that decode images or read large releases (minutes); the others convert in seconds
DECODING_FORMATS = {"cifar10-jpg", "cifar10-python", "image-folder", "coco", "karpathy", "flickr8k", "mirflickr25k",
                    "nuswide10", "mscoco-mat", "ucmfh"}


def runs_the_tests(cmd: "Command") -> bool:
    """``make test`` or a pytest command: the suite itself, checked but never run from inside it."""
    if cmd.kind != "shell":
        return False
    return any(tuple(w[:2]) in SELF or "pytest" in w or "py.test" in w for w in simple_commands(cmd.text))


def doc_files(repo: Path = REPO) -> list[Path]:
    return [repo / "README.md"] + sorted((repo / "docs").rglob("*.md"))


@dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


@dataclass
class Command:
    doc: Path
    line: int
    kind: str  # "shell" | "python"
    text: str
    needs: str | None = None
    excerpt: str | None = None
    slow: bool = False
    reduced: str | None = None  # the shortened command the slow test runs instead (None: as written)
    produces: list[str] = field(default_factory=list)  # paths it writes (a fast command naming one depends on it)
    notes: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    """Fenced code blocks of a Markdown file (``` or ~~~, any indentation; closed by the same fence)."""
    out, lines = [], doc.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(2), m.group(3).lower(), i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(m.group(1)):] if lines[i].startswith(m.group(1)) else lines[i])
            i += 1
        out.append(Block(doc, start + 1, lang, "\n".join(body)))
        i += 1
    return out


def shell_commands(block: Block) -> list[tuple[int, str]]:
    """(line, command) per logical command line: continuations joined, blank and comment lines skipped."""
    out, buf, start = [], "", None
    for i, line in enumerate(block.text.splitlines()):
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if start is None:
            start = block.line + 1 + i
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append((start, buf + line))
        buf, start = "", None
    if buf:
        out.append((start, buf))
    return out


def looks_like_command(line: str) -> bool:
    """A line in a non-run block that reads like a complete command (no placeholder that marks a synopsis)."""
    s = line.strip()
    if not s.startswith(COMMAND_WORDS):
        return False
    code = s.split(" #", 1)[0]
    placeholder = re.search(r"\b[A-Z][A-Z0-9_]{1,}\b|\[|\.\.\.|<|\||…", code)
    return placeholder is None


def collect(doc: Path) -> tuple[list[Command], list[str]]:
    """Every command of a doc, and the problems of its blocks (untagged, unknown language, hidden commands)."""
    commands, problems = [], []
    for b in blocks(doc):
        if not b.lang:
            problems.append(f"{b.where}: the block names no language (```bash / ```python are run; ```text, "
                            "```json ... are not)")
            continue
        if b.lang in SHELL_LANGS:
            for line, text in shell_commands(b):
                m = NEEDS.search(text)
                commands.append(Command(doc, line, "shell", text, needs=m.group(1).strip() if m else None))
        elif b.lang in PYTHON_LANGS:
            first = b.text.lstrip().splitlines()[0] if b.text.strip() else ""
            ex = EXCERPT.match(first)
            m = NEEDS.search(b.text)
            commands.append(Command(doc, b.line + 1, "python", b.text, needs=m.group(1).strip() if m else None,
                                    excerpt=ex.group(1) if ex else None))
        elif b.lang in QUIET_LANGS:
            for i, line in enumerate(b.text.splitlines()):
                if looks_like_command(line):
                    problems.append(f"{b.where}: line {b.line + 1 + i} looks like a command ({line.strip()!r}) in a "
                                    f"```{b.lang} block, which is not run: tag the block ```bash, or write the line "
                                    "as a synopsis (CONFIG, [--flag], ...)")
        else:
            problems.append(f"{b.where}: unknown block language '{b.lang}' (run: {sorted(SHELL_LANGS | PYTHON_LANGS)};"
                            f" not run: {sorted(QUIET_LANGS)})")
    return commands, problems


# --- what a shell command is ----------------------------------------------------------------------------------------
def simple_commands(text: str) -> list[list[str]]:
    """The simple commands of a command line (split at && || | ;), leading VAR=value assignments dropped."""
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = "#"
    parts, cur = [], []
    for tok in lex:
        if tok in ("&&", "||", "|", ";", "&"):
            parts.append(cur)
            cur = []
        else:
            cur.append(tok)
    parts.append(cur)
    out = []
    for p in parts:
        while p and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", p[0]):
            p = p[1:]
        if p:
            out.append(p)
    return out


def bitrieve_argv(words: list[str]) -> list[str] | None:
    """The arguments after ``bitrieve`` for any way of calling it, else None."""
    if words[0] in ("bitrieve", ".venv/bin/bitrieve"):
        return words[1:]
    if words[0] in ("python", "python3", ".venv/bin/python") and words[1:3] == ["-m", "bitrieve"]:
        return words[3:]
    if words[0] == "torchrun" and "-m" in words:
        i = words.index("-m")
        if words[i + 1:i + 2] == ["bitrieve"]:
            return words[i + 2:]
    return None


def parse_bitrieve(argv: list[str]):
    """bitrieve's own parser on ``argv`` (what --help documents); raises ValueError with argparse's message."""
    import contextlib
    import io

    from bitrieve.cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return build_parser().parse_args(argv)
    except SystemExit:
        raise ValueError(err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "bad arguments") \
            from None


def epoch_overrides(config_file: Path, overrides: list[str]) -> list[str]:
    """``params.X=1`` for every epoch count of the config's method that is above 1 (the slow test's shortening)."""
    from bitrieve.config import load_config

    cfg = load_config(config_file, overrides)
    params = cfg.method_params()
    out = []
    for name, value in params.model_dump().items():
        if name.endswith("epochs") and isinstance(value, int) and not isinstance(value, bool) and value > 1:
            out.append(f"params.{name}=1")
    return out


def classify(cmd: Command, ws: Path) -> None:
    """Set ``cmd.slow`` and ``cmd.reduced`` (``ws``: the workspace, where relative paths resolve)."""
    if cmd.kind == "python":
        cmd.slow = "train_run(" in cmd.text or "run_sweep(" in cmd.text
        return
    parts = simple_commands(cmd.text)
    slow, extra = False, []
    for words in parts:
        argv = bitrieve_argv(words)
        if argv is not None and argv:
            verb = argv[0]
            if verb == "train":
                args = parse_bitrieve(argv)
                shorten = epoch_overrides(ws / args.config, list(args.overrides))
                if shorten and finished(args, ws):
                    shorten = []  # a stored run of this very config: `train` only says so and skips it
                out = args.out or str(default_dir(copy.copy(args), ws))
                cmd.produces.append(out.rstrip("/"))
                if shorten:
                    slow = True
                    extra += [x for s in shorten for x in ("--set", s)]
                    if not args.out:  # keep the directory the full command would use (later commands name it)
                        extra += ["--out", out]
            elif verb == "sweep" and "--dry-run" not in argv:
                args = parse_bitrieve(argv)
                slow = True
                cmd.produces += sorted({str(p.run_dir.parent) for p in sweep_points(args, ws)})
                extra += [x for s in epoch_overrides(ws / args.config, list(args.sets)) for x in ("--set", s)]
            elif verb == "demo":
                slow, extra = True, extra + ["--epochs", "1"]
                cmd.produces.append(parse_bitrieve(argv).root.rstrip("/"))
            elif verb == "reproduce":  # a pack of training runs (--smoke: about a minute on the CPU)
                slow = True
                args = parse_bitrieve(argv)
                cmd.produces.append(args.out or ("runs/reproduce-cifar10-smoke" if args.smoke
                                                 else "runs/reproduce-cifar10"))
            elif argv[:2] == ["data", "proxy"] and parse_bitrieve(argv).rows is None:  # full size: seconds, GBs
                slow = True
                cmd.produces.append(parse_bitrieve(argv).to.rstrip("/"))
            elif verb == "results" and "--dry-run" not in argv:
                slow, extra = True, extra + ["--no-figures"]
            elif verb in ("figures", "features") or (argv[:2] == ["data", "convert"]
                                                     and parse_bitrieve(argv).fmt in DECODING_FORMATS):
                slow = True
                args = parse_bitrieve(argv)
                cmd.produces.append(str(getattr(args, "out", None) or getattr(args, "to", None)).rstrip("/"))
        elif words[0] == "make" and "demo" in words[1:]:
            slow, extra = True, extra + ["DEMO_FLAGS=--epochs 1"]
            cmd.produces.append("runs/demo")
        elif any(w.startswith("benchmarks/") for w in words):
            slow = True
            script = next(w for w in words if w.startswith("benchmarks/"))
            extra += {"benchmarks/eval_speed.py": ["--quick"],
                      "benchmarks/train_throughput.py": ["--device", "cpu", "--dsh-iters", "2", "--lite-iters", "1",
                                                         "--eval-images", "8", "--image-size", "64"],
                      "benchmarks/index_search.py": ["--n", "20000", "--queries", "50", "--repeats", "1"],
                      "benchmarks/search_latency.py": ["--rows", "3000", "--repeat", "2"],
                      "benchmarks/convert_memory.py": ["--rows", "3000"],
                      "benchmarks/encode_speed.py": ["--rows", "600", "--repeats", "1"]}.get(script, [])
        elif words[0].startswith("scripts/reproduce_cifar10"):
            slow = True
            out = words[words.index("--out") + 1] if "--out" in words[:-1] else None
            cmd.produces.append(out or ("runs/reproduce-cifar10-smoke" if "--smoke" in words else
                                        "runs/reproduce-cifar10"))
        elif words[0].startswith("scripts/make_results") and "--dry-run" not in words:
            slow, extra = True, extra + ["--no-figures"]
    cmd.slow = slow
    if extra:
        if len(parts) != 1:
            cmd.notes.append("compound command: run unshortened")
        else:
            words = shlex.split(cmd.text, comments=True)
            cmd.reduced = shlex.join(words + extra)


def finished(args, ws: Path) -> bool:
    """The run directory of these ``train`` arguments already holds results.json of the same config."""
    import copy
    import json

    from bitrieve.engine.cli import config_from_args

    a = copy.copy(args)
    a.config = str(ws / args.config)
    out = ws / args.out if args.out else ws / default_dir(copy.copy(args), ws)
    try:
        stored = json.loads((out / "results.json").read_text()).get("config_sha256")
    except (OSError, ValueError):
        return False
    return stored == config_from_args(a).sha256()


def default_dir(args, ws: Path) -> Path:
    """The run directory ``bitrieve train`` picks for these arguments (bitrieve.engine.cli's rule)."""
    from bitrieve.engine.cli import config_from_args
    from bitrieve.engine.runs import train_run_dir

    args.config = str(ws / args.config) if not Path(args.config).is_absolute() else args.config
    return train_run_dir(args.config, config_from_args(args), config_from_args(args, table_axes_only=True))


def sweep_points(args, ws: Path):
    """The points of a ``sweep`` command line (validated as ``bitrieve sweep`` validates them)."""
    from bitrieve.report.sweep import expand, load_base, parse_grid, parse_int_list

    return expand(load_base(ws / args.config), args.config,
                  parse_int_list(args.bits, "bits") if args.bits else None,
                  parse_int_list(args.seeds, "seeds") if args.seeds else None, args.sets,
                  parse_grid(args.grid), args.root, args.tag)


# --- checks without running -----------------------------------------------------------------------------------------
def check_syntax(cmd: Command, ws: Path) -> None:
    """A command that is not run here: its flags parse, its config validates, its script / make target exists."""
    if cmd.kind == "python":
        compile(cmd.text, cmd.where, "exec")
        return
    for words in simple_commands(cmd.text):
        argv = bitrieve_argv(words)
        if argv is not None:
            args = parse_bitrieve(argv)
            if argv and argv[0] == "train":
                from bitrieve.engine.cli import config_from_args

                args.config = str(ws / args.config)
                config_from_args(args)  # the config file exists and every --set key is valid
            elif argv and argv[0] == "sweep":
                sweep_points(args, ws)
        elif words[0] == "make":
            targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
            text = (ws / "Makefile").read_text()
            for t in targets:
                if not re.search(rf"^{re.escape(t)}\s*:", text, re.M):
                    raise ValueError(f"make target '{t}' is not in the Makefile")
        elif words[0] in ("python", "python3", ".venv/bin/python") and words[1:3] == ["-m", "pytest"]:
            for path in (w for w in words[3:] if not w.startswith("-") and "/" in w):
                if not (ws / path.split("::")[0]).exists():
                    raise ValueError(f"pytest path {path!r} not found")
        elif words[0] in ("python", "python3", ".venv/bin/python"):
            script = next((w for w in words[1:] if not w.startswith("-")), None)
            if script is None or not (ws / script).is_file():
                raise ValueError(f"script {script!r} not found")
            compile((ws / script).read_text(), script, "exec")
        elif (ws / words[0]).is_file():
            if subprocess.run(["bash", "-n", str(ws / words[0])], capture_output=True).returncode:
                raise ValueError(f"{words[0]}: bash -n reports a syntax error")
        else:
            raise ValueError(f"do not know how to check {words[0]!r} without running it")


def check_excerpt(cmd: Command) -> None:
    """Every code line of an excerpt block occurs in the file it quotes (whitespace and comments ignored)."""
    source = REPO / cmd.excerpt
    if not source.is_file():
        raise ValueError(f"{cmd.where}: excerpt of {cmd.excerpt}, which does not exist")
    norm = lambda line: " ".join(re.split(r"\s#\s|^#", line, maxsplit=1)[0].split())  # noqa: E731
    have = {norm(line) for line in source.read_text().splitlines()}
    missing = [line.strip() for line in cmd.text.splitlines()[1:] if norm(line) and norm(line) not in have]
    if missing:
        raise ValueError(f"{cmd.where}: lines not in {cmd.excerpt} (the excerpt drifted from the code): {missing}")


# --- running --------------------------------------------------------------------------------------------------------
def make_workspace(root: Path) -> Path:
    """A copy of the repository's files (tracked + untracked, not ignored) under ``root/repo``, ``src`` linked to the
    checkout's, ``.venv/bin`` and ``bin`` shims for the running interpreter, ``root/shared`` -> the shared data."""
    ws = root / "repo"
    ws.mkdir(parents=True)
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but the usual outputs
        listed = [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file()
                  and not p.relative_to(REPO).parts[0] in (".git", ".venv", "runs", "stores", "indexes")]
    for rel in listed:
        if not rel or rel.startswith("src/"):
            continue
        src = REPO / rel
        if src.is_file():
            (ws / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, ws / rel)
    (ws / "src").symlink_to(REPO / "src")
    bins = [root / "bin", ws / ".venv" / "bin"]
    for b in bins:
        b.mkdir(parents=True)
        for name, line in (("python", f'exec "{sys.executable}" "$@"'), ("python3", f'exec "{sys.executable}" "$@"'),
                           ("bitrieve", f'exec "{sys.executable}" -m bitrieve "$@"')):
            (b / name).write_text(f"#!/bin/sh\n{line}\n")
            (b / name).chmod(0o755)
    # the Makefile's install stamp, so `make demo` uses the shims instead of installing
    import hashlib

    digest = hashlib.sha256((ws / "pyproject.toml").read_bytes() + (ws / "constraints.txt").read_bytes()).hexdigest()
    (ws / ".venv" / f".installed-{digest[:12]}").touch()
    from shared_data import SHARED_DATA

    if SHARED_DATA.is_dir():
        (root / "shared").symlink_to(SHARED_DATA.parent)
    return ws


def environment(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PATH=f"{root / 'bin'}:{env.get('PATH', '')}", PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    env.pop("VIRTUAL_ENV", None)
    env.pop("BITRIEVE_METHOD_MODULES", None)  # the tests' toy method (conftest.py): docs run as a user's shell does
    return env


@dataclass
class Outcome:
    cmd: Command
    ran: str
    rc: int
    seconds: float
    output: str


def plain_bitrieve(text: str) -> list[str] | None:
    """The argv after ``bitrieve`` when the command line is one plain bitrieve call (no redirection, pipe, variable,
    environment assignment or other shell feature), else None."""
    words = shlex.split(text, comments=True)
    code = shlex.join(words)
    if not words or re.search(r"[<>|&;$`]", code.replace("'", "")) or "=" in words[0]:
        return None
    return bitrieve_argv(words) if words[0] != "torchrun" else None


class Worker:
    """tests/docs_worker.py in a subprocess: plain ``bitrieve`` commands without paying the imports each time."""

    def __init__(self, env: dict[str, str]):
        import json

        self._json = json
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("docs_worker.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)

    def run(self, argv: list[str], cwd: Path) -> tuple[int, str]:
        self.proc.stdin.write(self._json.dumps({"argv": argv, "cwd": str(cwd)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the doc worker died (exit status {self.proc.wait()})")
        reply = self._json.loads(line)
        return reply["rc"], reply["output"]

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_command(cmd: Command, ws: Path, env: dict[str, str], slow: bool, timeout: float,
                worker: Worker | None = None) -> Outcome:
    text = cmd.reduced if slow and cmd.reduced else cmd.text
    t0 = time.perf_counter()
    argv = plain_bitrieve(text) if worker is not None and cmd.kind == "shell" else None
    if argv is not None:
        rc, out = worker.run(argv, ws)
        return Outcome(cmd, text, rc, time.perf_counter() - t0, out)
    if cmd.kind == "python":
        script = ws / f".doc_block_{cmd.line}.py"
        script.write_text(cmd.text)
        argv = [sys.executable, str(script)]
    else:
        argv = ["bash", "-eo", "pipefail", "-c", text]
    try:
        p = subprocess.run(argv, cwd=ws, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out = p.returncode, (p.stdout + p.stderr)
    except subprocess.TimeoutExpired as e:
        rc, out = -9, f"timed out after {timeout:.0f} s\n{(e.stdout or b'')[-3000:]!r}"
    return Outcome(cmd, text if cmd.kind == "shell" else f"python block ({len(cmd.text.splitlines())} lines)", rc,
                   time.perf_counter() - t0, out)
