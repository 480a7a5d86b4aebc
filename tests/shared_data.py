"""Where the project's real data lives: $BITRIEVE_SHARED_DATA, else ../shared/data beside the checkout."""

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("BITRIEVE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
