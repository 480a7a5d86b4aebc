#!/usr/bin/env bash
# Regenerate docs/results.md and docs/figures/ from scratch-or-resume sweeps: every method with a
# configs/<method>_wiki.yaml, on Wiki, 4 bit lengths x 3 seeds. Finished runs (results.json with the same config
# sha256) are skipped, interrupted ones resumed, so running this again after a crash only does what is missing.
#
#   scripts/make_results.sh                      # CPU or GPU (device: auto)
#   scripts/make_results.sh --set device=cuda    # extra arguments go to every `bitrieve sweep`
#   BITS=16,32 SEEDS=0 scripts/make_results.sh   # a quicker, smaller page
#   REPORT_ONLY=1 scripts/make_results.sh        # no training: tables/figures from the runs already stored
#   METHODS="cca_itq agch" scripts/make_results.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
ROOT=${ROOT:-results}
BITS=${BITS:-16,32,64,128}
SEEDS=${SEEDS:-0,1,2}
DATASET=wiki
# METHODS="cca_itq agch" narrows the page to some methods
read -r -a METHODS <<< "${METHODS:-cca_itq agch ucmfh ucmfh_variant djsrh jdsh dgcpn agch_fusion_balanced}"
MD=${MD:-docs/results.md}
FIG=${FIG:-docs/figures}

bitrieve() { "$PY" -m bitrieve "$@"; }

roots=()
failed=()
for m in "${METHODS[@]}"; do
  cfg="configs/${m}_${DATASET}.yaml"
  if [ ! -f "$cfg" ]; then
    echo "make_results: no $cfg, $m left out"
    continue
  fi
  if [ -z "${REPORT_ONLY:-}" ]; then
    echo "make_results: sweep $cfg (bits $BITS, seeds $SEEDS)"
    bitrieve sweep "$cfg" --bits "$BITS" --seeds "$SEEDS" --root "$ROOT" "$@" || failed+=("$m")
  fi
  [ -d "$ROOT/${m}-${DATASET}" ] && roots+=("$ROOT/${m}-${DATASET}")
done

if [ ${#roots[@]} -eq 0 ]; then
  echo "make_results: no finished runs under $ROOT; nothing to report" >&2
  exit 1
fi

# curve figures of methods no longer in the sweep must not linger in the docs. Retrieval examples need the
# checkpoints, which are not committed (see .gitignore): an example figure is replaced when its run's checkpoint is
# here, and kept otherwise.
mkdir -p "$FIG"
find "$FIG" -maxdepth 1 -type f \( -name 'pr_*' -o -name 'pn_*' -o -name 'train_*' \) \
  \( -name '*.png' -o -name '*.pdf' \) -delete
bitrieve figures "${roots[@]}" --out "$FIG" || echo "make_results: some figures could not be drawn (see above)" >&2
cmd="BITS=$BITS SEEDS=$SEEDS METHODS=\"${METHODS[*]}\" scripts/make_results.sh${*:+ $*}"
bitrieve report "${roots[@]}" --results-md "$MD" --figures-dir "$FIG" --command "$cmd"

if [ ${#failed[@]} -gt 0 ]; then
  echo "make_results: sweeps with failed runs: ${failed[*]} (see above); $MD shows the runs that finished" >&2
  exit 1
fi
