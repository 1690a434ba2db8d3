#!/usr/bin/env python3
"""A TF Serving REST client with the standard library alone: sends every row of a CSV
file (without its label column) to a `:predict` URL in the row format, and prints one
JSON object of predictions per row, as `estimator predict` writes them.

    tf_serving_client.py URL CSV LABEL_COLUMN
"""
import csv
import json
import sys
import urllib.request


def main():
    url, path, label = sys.argv[1:4]
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    instances = [
        {k: float(v) for k, v in row.items() if k != label} for row in rows
    ]
    body = json.dumps({"instances": instances}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        answer = json.load(response)
    for prediction in answer["predictions"]:
        print(json.dumps(prediction))


if __name__ == "__main__":
    main()
