#!/usr/bin/env bash
# Cross-checks docs/test-vectors/job-ids.json with an implementation of BLAKE3
# that is not ours: b3sum (Debian package b3sum). Python builds the preimage
# bytes; b3sum hashes them; the first 16 bytes must equal job_id.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v b3sum >/dev/null || { echo "b3sum not found: apt-get install b3sum" >&2; exit 1; }
python3 - <<'PY'
import json, subprocess, struct, sys
tiers = {"micro": 0, "macro": 1, "full": 2}
vs = json.load(open("docs/test-vectors/job-ids.json"))["vectors"]
bad = 0
for v in vs:
    pre = (b"rivellum-pouw-job-v1" + bytes.fromhex(v["intent_id"]) + bytes.fromhex(v["trace_hash"])
           + bytes([tiers[v["tier"]]]) + struct.pack(">Q", v["created_seq"]))
    out = subprocess.run(["b3sum", "--no-names", "-l", "16"], input=pre, capture_output=True, check=True).stdout.decode().strip()
    ok = out == v["job_id"]
    bad += not ok
    print(("ok  " if ok else "BAD ") + v["job_id"] + "  " + v["name"])
print(f"{len(vs)-bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
PY
