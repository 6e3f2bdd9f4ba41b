#!/usr/bin/env bash
# Cross-checks the trace test vectors (docs/test-vectors/trace-vectors.json)
# with tools that are not ours: b3sum (the reference BLAKE3) hashes every
# trace and program file, and an independent Python reader of
# docs/trace-format.md parses each trace (header, programs, segments, rows),
# checks its sizes, that every cell is < p, that embedded program hashes are
# b3sum of their encodings, and that multiplicities sum to the row count.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v b3sum >/dev/null || { echo "b3sum not found: apt-get install b3sum" >&2; exit 1; }
python3 - <<'PY'
import json, struct, subprocess, sys
P = 0xffffffff00000001
D = "docs/test-vectors/"
vs = json.load(open(D + "trace-vectors.json"))

def b3(data):
    return subprocess.run(["b3sum", "--no-names"], input=data, capture_output=True, check=True).stdout.decode().split()[0]

def parse(b):
    """Parse a trace per docs/trace-format.md; return (rows, width, n_cells_checked)."""
    o = 0
    def take(n):
        nonlocal o
        if o + n > len(b): raise ValueError("truncated at %d" % o)
        s = b[o:o+n]; o += n; return s
    u8 = lambda: take(1)[0]
    u16 = lambda: struct.unpack("<H", take(2))[0]
    u32 = lambda: struct.unpack("<I", take(4))[0]
    u64 = lambda: struct.unpack("<Q", take(8))[0]
    def felt():
        v = u64()
        if v >= P: raise ValueError("felt >= p at %d" % (o - 8))
        return v
    assert take(8) == b"POUWTRC\x00", "magic"
    assert u16() == 1 and u16() == 1, "versions"
    tier = u8(); assert tier <= 2 and u8() == 0, "tier/reserved"
    width = u16(); assert width == 59, "width"
    rows = u64(); assert rows & (rows - 1) == 0 and rows > 0, "rows"
    take(32); take(32)  # intent_id, parent
    progs = []
    for _ in range(u32()):
        h = take(32).hex(); plen = u32(); enc = take(plen)
        assert b3(enc) == h, "program hash"
        assert enc[:8] == b"POUWPRG\x01", "program magic"
        nin, nout = enc[8], enc[9]
        outs = list(enc[10:10+nout])
        L = struct.unpack("<I", enc[10+nout:14+nout])[0]
        assert len(enc) == 14 + nout + 16 * L, "program length"
        progs.append((L, outs))
    msum = sum(u64() for L, _ in progs for _ in range(L))
    assert msum == rows, "multiplicities sum %d != rows %d" % (msum, rows)
    nseg = u32(); nxt = 0
    for _ in range(nseg):
        kind = u8(); g = u32(); take(32)
        start, end = u64(), u64()
        assert start == nxt and start <= end < rows, "segment rows"
        nxt = end + 1
        [felt() for _ in range(17)]
        if kind == 0:
            [felt() for _ in progs[g][1]]
        else:
            u64(); [felt() for _ in range(17)]
    assert len(b) - o == rows * width * 8, "row bytes"
    cells = struct.unpack("<%dQ" % (rows * width), b[o:])
    assert all(c < P for c in cells), "cell >= p"
    return rows, width, len(cells)

bad = 0
for p in vs["programs"]:
    ok = b3(open(D + p["file"], "rb").read()) == p["program_hash"]
    bad += not ok
    print(("ok  " if ok else "BAD ") + p["program_hash"] + "  program " + p["name"])
for v in vs["traces"]:
    data = open(D + v["file"], "rb").read()
    why = ""
    try:
        rows, width, n = parse(data)
        if rows != v["rows"]: why = "rows %d != %d" % (rows, v["rows"])
    except (AssertionError, ValueError) as e:
        why = "parse: %s" % e
    if not why and b3(data) != v["trace_hash"]:
        why = "b3sum differs"
    bad += bool(why)
    print(("ok  " if not why else "BAD ") + v["trace_hash"] + "  " + v["file"] + ("" if not why else "  " + why))
total = len(vs["programs"]) + len(vs["traces"])
print(f"{total-bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
PY
