"""Where the project's real data lives: $BITRIEVE_SHARED_DATA, else ../shared/data beside the checkout (CI's layout),
else the workplace's /work/shared/data (a clone made elsewhere, e.g. /tmp)."""

import os
from pathlib import Path

_beside = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_DATA = Path(os.environ.get("BITRIEVE_SHARED_DATA") or
                   (_beside if _beside.is_dir() else Path("/work/shared/data")))
