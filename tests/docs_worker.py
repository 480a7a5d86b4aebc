"""A long-lived ``bitrieve`` for the fast doc tests: reads one JSON request per line ({"argv": [...], "cwd": "..."}),
runs ``bitrieve.cli.main(argv)`` there and answers {"rc": int, "output": str} on one line.

One process for all of a doc's plain ``bitrieve ...`` commands saves the ~3 s of imports (torch) that every
command pays in its own process; the slow doc test runs every command through bash instead. Between commands the
package's per-process state is reset (memoised loaders, the count of warnings already shown).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback


def reset() -> None:
    for name, mod in list(sys.modules.items()):
        if name.startswith("bitrieve") and mod is not None:
            for value in list(vars(mod).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()
    console = sys.modules.get("bitrieve.console")
    if console is not None:
        console._counts.clear()


def serve() -> None:
    from bitrieve.cli import main

    reply = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        os.chdir(req["cwd"])
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            try:
                rc = int(main(req["argv"]) or 0)
            except SystemExit as e:  # argparse errors, --version
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # noqa: BLE001 (an uncaught exception is a failure the test shows)
                traceback.print_exc(file=buf)
                rc = 1
        reset()
        reply.write(json.dumps({"rc": rc, "output": buf.getvalue()}) + "\n")
        reply.flush()


if __name__ == "__main__":
    serve()
