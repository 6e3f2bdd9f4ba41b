#!/usr/bin/env python3
"""Plot a chaos soak's memory and goroutine samples as an SVG.

Usage: scripts/plot-soak.py REPORT.json OUT.svg
REPORT.json is what `pouw chaos --out` writes; its "samples" are taken every
5 s per process. Two panels: RSS (MB) of every process, and goroutines of the
coordinators (farms export none). Fault times are ticks on the time axis.
Standard library only, so it runs wherever python3 does.
"""
import json, sys
from collections import defaultdict

report = json.load(open(sys.argv[1]))
samples = report["samples"]
series_rss, series_gr = defaultdict(list), defaultdict(list)
for s in samples:
    # One list per process lifetime: a restart starts a new line segment.
    key = (s["proc"], s.get("start", 0))
    series_rss[key].append((s["at_s"], s["rss_bytes"] / 1e6))
    if s.get("goroutines", -1) >= 0 and s["proc"].startswith("coordinator"):
        series_gr[key].append((s["at_s"], s["goroutines"]))
t_max = max(s["at_s"] for s in samples)
faults = [f["at_s"] for f in report.get("faults", [])]
base = next((p["seconds"] for p in report.get("phases", []) if p["name"] == "no-fault"), 0)

W, PH, ML, MR, MT = 900, 230, 60, 150, 30
colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{2*PH+3*MT+20}" font-family="sans-serif" font-size="11">',
       '<rect width="100%" height="100%" fill="white"/>']

def panel(y0, title, series, unit):
    vals = [v for pts in series.values() for _, v in pts]
    lo, hi = 0, max(vals) * 1.15 if vals else 1
    x = lambda t: ML + (W - ML - MR) * t / t_max
    y = lambda v: y0 + PH - PH * (v - lo) / (hi - lo)
    out.append(f'<text x="{ML}" y="{y0-8}" font-size="13" font-weight="bold">{title}</text>')
    out.append(f'<rect x="{ML}" y="{y0}" width="{W-ML-MR}" height="{PH}" fill="none" stroke="#999"/>')
    if base:
        out.append(f'<rect x="{ML}" y="{y0}" width="{x(base)-ML:.1f}" height="{PH}" fill="#eef6ee"/>')
        out.append(f'<text x="{ML+4}" y="{y0+14}" fill="#484">no faults</text>')
    for t in faults:
        out.append(f'<line x1="{x(t):.1f}" y1="{y0+PH}" x2="{x(t):.1f}" y2="{y0+PH-6}" stroke="#c00"/>')
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        out.append(f'<text x="{ML-6}" y="{y(v)+4:.1f}" text-anchor="end">{v:.0f}</text>')
        out.append(f'<line x1="{ML}" y1="{y(v):.1f}" x2="{W-MR}" y2="{y(v):.1f}" stroke="#eee"/>')
    for m in range(0, int(t_max // 60) + 1, 5):
        out.append(f'<text x="{x(m*60):.1f}" y="{y0+PH+14}" text-anchor="middle">{m} min</text>')
    out.append(f'<text x="14" y="{y0+PH/2}" transform="rotate(-90 14 {y0+PH/2})" text-anchor="middle">{unit}</text>')
    names = sorted({proc for proc, _ in series})
    for (proc, _), pts in sorted(series.items()):
        c = colors[names.index(proc) % len(colors)]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in sorted(pts))
        out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="1.2"/>')
    for i, name in enumerate(names):
        c = colors[i % len(colors)]
        out.append(f'<text x="{W-MR+8}" y="{y0+14+14*i}" fill="{c}">{name}</text>')

panel(MT, "Resident memory per process (restarts start a new line segment)", series_rss, "MB")
panel(2*MT + PH + 10, "Goroutines per coordinator", series_gr, "goroutines")
out.append(f'<text x="{ML}" y="{2*PH+3*MT+14}" fill="#c00">red ticks: injected faults ({len(faults)}); seed {report.get("seed")}</text>')
out.append("</svg>")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
