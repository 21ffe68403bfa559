"""Reads a Prometheus text exposition on stdin with the reference parser (prometheus_client) and
prints one JSON line per sample: {"name", "labels", "value"}. A malformed exposition fails."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value}))
