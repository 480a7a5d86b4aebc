"""Every shell command and Python example in README.md and docs/**/*.md runs (rules: tests/docs_harness.py and
docs/writing-docs.md).

Default suite: the structure of every block, the syntax of what cannot run here, excerpts against their source, and
each doc's fast commands run in order in a temporary copy of the repository. ``pytest -m slow``: every command of
every doc, training shortened. Docs are discovered when the tests are collected, so a new or changed block is
picked up without touching this file.
"""

from __future__ import annotations

import pytest

import docs_harness as h

DOCS = h.doc_files()
ALL = {doc: h.collect(doc) for doc in DOCS}


def _id(doc) -> str:
    return str(doc.relative_to(h.REPO))


def test_blocks_are_tagged_and_no_command_hides_in_a_text_block():
    problems = [p for _, (_, probs) in ALL.items() for p in probs]
    assert not problems, "\n".join(problems)


def test_docs_have_commands():
    """The harness finds what it should (a parser that found nothing would pass every other test)."""
    n = {_id(d): len(c) for d, (c, _) in ALL.items()}
    assert n["README.md"] >= 8 and n["docs/index.md"] >= 5 and n["docs/reporting.md"] >= 10, n


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    return root, h.make_workspace(root)


def test_commands_that_cannot_run_here_parse(workspace):
    """``[needs: ...]`` commands and the test suite's own commands: flags parsed by bitrieve's parser, configs validated, scripts and
    make targets present."""
    _, ws = workspace
    failures, checked = [], 0
    for doc, (commands, _) in ALL.items():
        for c in commands:
            if c.needs or h.runs_the_tests(c):
                checked += 1
                try:
                    h.check_syntax(c, ws)
                except Exception as e:  # noqa: BLE001 (report every bad command at once)
                    failures.append(f"{c.where}: {c.text.strip()[:120]}\n    {type(e).__name__}: {e}")
    assert checked > 0
    assert not failures, "\n".join(failures)


def test_excerpts_match_their_source():
    failures = []
    for doc, (commands, _) in ALL.items():
        for c in commands:
            if c.excerpt:
                try:
                    h.check_excerpt(c)
                except ValueError as e:
                    failures.append(str(e))
    assert not failures, "\n".join(failures)


def _runnable(doc):
    return [c for c in ALL[doc][0] if not c.needs and not c.excerpt and not h.runs_the_tests(c)]


def _plan(doc, ws, slow: bool):
    """(command, action) in doc order; action: "run", or why it is skipped in the fast run ("slow"; "needs" a path
    a skipped command writes; "repeat" of a command already run: the Chinese quick start repeats the English one)."""
    plan, produced, seen = [], [], set()
    for c in _runnable(doc):
        h.classify(c, ws)
        key = " ".join(h.shlex.split(c.text, comments=True)) if c.kind == "shell" else c.text
        if slow:
            action = "run"
        elif c.slow:
            action = "slow"
        elif any(p and p in c.text for p in produced):
            action = "needs"
        elif key in seen:
            action = "repeat"
        else:
            action = "run"
        if action in ("slow", "needs"):
            produced += c.produces
        seen.add(key)
        plan.append((c, action))
    return plan


def _run_doc(doc, tmp_path, slow: bool):
    """Fast: plain bitrieve commands in one worker process (tests/docs_worker.py). Slow: every command through bash,
    as written (training shortened)."""
    ws = h.make_workspace(tmp_path)
    env = h.environment(tmp_path)
    worker, outcomes, skipped = None, [], []
    try:
        for c, action in _plan(doc, ws, slow):
            if action != "run":
                skipped.append((c, action))
                continue
            if worker is None and not slow and c.kind == "shell" and h.plain_bitrieve(c.text) is not None:
                worker = h.Worker(env)
            o = h.run_command(c, ws, env, slow, timeout=1800 if slow else 300, worker=worker)
            outcomes.append(o)
            print(f"{o.seconds:7.1f} s  rc {o.rc}  {c.where}  {o.ran[:150]}")
            if o.rc != 0:
                before = [f"{s.where} ({a})" for s, a in skipped if a != "repeat"]
                hint = (f"\n(the fast run skipped before it: {'; '.join(before)})") if before else ""
                pytest.fail(f"{c.where}: exit status {o.rc}\n$ {o.ran}\n{o.output[-4000:]}{hint}")
    finally:
        if worker is not None:
            worker.close()
    return outcomes, skipped


RUN_DOCS = [d for d in DOCS if _runnable(d)]


@pytest.mark.parametrize("doc", RUN_DOCS, ids=_id)
def test_doc_commands_run(doc, tmp_path):
    """The doc's fast commands, in order, verbatim (slow ones, and those that need their output, are the slow
    test's)."""
    if not any(a == "run" for _, a in _plan(doc, h.REPO, slow=False)):
        pytest.skip("every command of this doc is slow (run by the slow test)")
    _run_doc(doc, tmp_path, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUN_DOCS, ids=_id)
def test_doc_commands_run_all(doc, tmp_path):
    """Every command of the doc, in order, through bash; training shortened (the doc shows the full command)."""
    _run_doc(doc, tmp_path, slow=True)


def test_readme_quick_starts_show_the_same_commands():
    """The Chinese quick start is the English one: the same commands, in the same order (comments translated)."""
    text = (h.REPO / "README.md").read_text(encoding="utf-8").splitlines()

    def section(title: str) -> list[str]:
        start = next(i for i, line in enumerate(text) if line.strip() == title)
        end = next((i for i in range(start + 1, len(text)) if text[i].startswith("## ")), len(text))
        commands = [c for c in ALL[h.REPO / "README.md"][0] if c.kind == "shell" and start < c.line <= end]
        return [" ".join(h.shlex.split(c.text, comments=True)) for c in commands]

    english, chinese = section("## Quick start"), section("## 快速上手（中文）")
    assert len(english) >= 10 and english == chinese
    for step in ("train", "eval", "report", "index build", "search"):
        assert any(f"bitrieve {step} " in c for c in english), step
