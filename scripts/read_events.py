"""Prints the TensorBoard scalars under MODEL_DIR's subfolders as JSON, read by
TensorBoard's own EventAccumulator: {"<subfolder>": {"<tag>": [[step, value], ...]}}.

Usage: python3 scripts/read_events.py MODEL_DIR [SUBFOLDER ...]   (default: the folder itself)
"""
import json
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def scalars(folder):
    acc = EventAccumulator(folder)
    acc.Reload()
    return {
        tag: [[event.step, event.value] for event in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }


def main():
    model_dir, subfolders = sys.argv[1], sys.argv[2:] or ["."]
    print(json.dumps({sub: scalars(os.path.join(model_dir, sub)) for sub in subfolders}))


if __name__ == "__main__":
    main()
