#!/usr/bin/env bash
# The six premade cases side by side: TF Estimator 2.15 (scripts/tf/premade_speed.py)
# and ours (scripts/bench-premade.sh), run back to back on this machine, each figure the
# median of five runs. Needs TF: `pip install tensorflow-cpu==2.15.1`.
# Prints `ratio case=<name> ours=<steps/s> tf=<steps/s> x=<ours / tf>` per case.
set -euo pipefail
cd "$(dirname "$0")/.."
tf="$(TF_CPP_MIN_LOG_LEVEL=3 python3 scripts/tf/premade_speed.py 2>/dev/null)"
ours="$(scripts/bench-premade.sh)"
python3 - "$tf" "$ours" << 'PY'
import sys
def rates(text):
    out = {}
    for line in text.splitlines():
        fields = dict(f.split("=") for f in line.split()[1:])
        out[fields["case"]] = float(fields["steps_per_sec"])
    return out
tf, ours = rates(sys.argv[1]), rates(sys.argv[2])
for case in sorted(ours):
    print(f"ratio case={case} ours={ours[case]:.0f} tf={tf[case]:.0f} x={ours[case] / tf[case]:.1f}")
PY
