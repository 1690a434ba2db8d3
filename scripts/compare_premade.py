"""The six premade cases side by side: TF Estimator 2.15's `train()` and our whole
`estimator train` process, taken in turns, TF's run then ours, five pairs per case. Both
sides drift with this machine's state (by up to 30% within minutes), so a ratio is only
as good as the time between its two figures: here each pair is seconds apart rather than
the length of a whole script. Each figure is the median of its case's five runs.

    python3 scripts/compare_premade.py ESTIMATOR_BINARY

from the repository's root, after `cargo build --release`. Prints
`ratio case=<name> ours=<steps/s> tf=<steps/s> x=<ours / tf> pairs=<each pair's ratio>`.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "tf"))
sys.path.insert(0, os.path.dirname(__file__))

import premade_cases  # noqa: E402
import premade_speed  # noqa: E402  (imports TensorFlow)

STEPS = 2000
PAIRS = 5
SETTLE_SECONDS = 0.5


def ours_seconds(binary, manifest, model_dir):
    shutil.rmtree(model_dir, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([binary, "train", manifest, "--max-steps", str(STEPS), "--quiet"], check=True)
    return time.perf_counter() - start


def main(binary):
    with tempfile.TemporaryDirectory() as work:
        manifests = dict(premade_cases.write_manifests(work, os.path.abspath("data")))
        for case, tf_once in premade_speed.cases():
            model_dir = os.path.join(work, case + "_model")
            tf, ours = [], []
            for _ in range(PAIRS):
                tf.append(tf_once())
                # TF's thread pools keep spinning a while after `train()` returns: let
                # them go to sleep before our run takes the cores.
                time.sleep(SETTLE_SECONDS)
                ours.append(ours_seconds(binary, manifests[case], model_dir))
            rate = lambda seconds: STEPS / statistics.median(seconds)  # noqa: E731
            pairs = ",".join(f"{t / o:.0f}" for t, o in zip(tf, ours))
            print(f"ratio case={case} ours={rate(ours):.0f} tf={rate(tf):.0f} "
                  f"x={rate(ours) / rate(tf):.1f} pairs={pairs}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
