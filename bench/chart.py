"""``bench.html``: the figures of one ``homecare bench`` run as a self-contained page.

Each figure that has a baseline is a pair of bars on one scale (the figure, its baseline) with
the ratio written beside them; a target is a dashed line. No scripts, no external files.
"""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, BAR_H, GAP, LABEL_W = 520, 14, 6, 0


def _bars(f: dict[str, Any]) -> str:
    values = [f["value"]]
    if f["baseline_value"] is not None:
        values.append(f["baseline_value"])
    if f["target"] is not None:
        values.append(f["target"])
    top = max(*values, 1e-12)
    rows = [("figure", f["value"], "#1f6feb")]
    if f["baseline_value"] is not None:
        rows.append(("baseline", f["baseline_value"], "#8c959f"))
    height = len(rows) * (BAR_H + GAP) + GAP
    parts = [f'<svg width="{WIDTH + 160}" height="{height}" role="img">']
    for i, (label, value, colour) in enumerate(rows):
        y = GAP + i * (BAR_H + GAP)
        w = max(1.0, WIDTH * value / top)
        parts.append(
            f'<rect x="0" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{colour}"/>'
            f'<text x="{w + 4:.1f}" y="{y + BAR_H - 3}" font-size="11">{label} {value:g}'
            f" {escape(f['unit'])}</text>"
        )
    if f["target"] is not None:
        x = WIDTH * f["target"] / top
        parts.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}" stroke="#cf222e" '
            f'stroke-dasharray="4 3"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render(report: dict[str, Any]) -> str:
    rows = []
    for f in report["figures"]:
        ratio = "" if f["ratio"] is None else f"{f['ratio']:g} ×"
        target = ""
        if f["target"] is not None:
            sign = "≤" if f["better"] == "lower" else "≥"
            met = "met" if f["target_met"] else "NOT met"
            target = f"{sign} {f['target']:g} {escape(f['unit'])} ({met})"
        rows.append(
            "<tr>"
            f"<td>{escape(f['bench'])}</td><td>{escape(f['name'])}</td>"
            f"<td class=n>{f['value']:g} {escape(f['unit'])}</td>"
            f"<td>{escape(f['baseline'] or '')}</td><td class=n>{ratio}</td>"
            f"<td>{target}</td><td>{_bars(f)}</td></tr>"
        )
    status = []
    for name, b in report["benches"].items():
        detail = b.get("error", "") if b["status"] == "failed" else ""
        elapsed = f"{b['elapsed_s']} s" if "elapsed_s" in b else ""
        status.append(
            f"<tr><td>{escape(name)}</td><td>{escape(b['status'])}</td><td>{elapsed}</td>"
            f"<td>{escape(b.get('what', ''))}</td><td>{escape(detail)}</td></tr>"
        )
    m = report["machine"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>homecare bench {escape(report["at"])}</title>
<style>
body {{ font: 13px system-ui, sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }}
td, th {{ border-bottom: 1px solid #d0d7de; padding: 3px 8px; text-align: left;
          vertical-align: middle; }}
td.n {{ text-align: right; white-space: nowrap; }}
</style></head><body>
<h1>homecare bench</h1>
<p>{escape(report["at"])} · {"quick (smoke) run · " if report["quick"] else ""}{m["cpus"]} CPUs ·
Python {escape(str(m["python"]))} · {escape(str(m["platform"]))} · total {report["total_s"]} s.
Ratio = figure / baseline, both measured in this run; blue bar the figure, grey its baseline,
dashed red line the DESIGN.md target.</p>
<table><tr><th>bench</th><th>status</th><th>time</th><th>what</th><th>error</th></tr>
{"".join(status)}</table>
<h2>Figures</h2>
<table><tr><th>bench</th><th>figure</th><th>value</th><th>baseline</th><th>ratio</th>
<th>target</th><th></th></tr>
{"".join(rows)}</table>
</body></html>
"""
