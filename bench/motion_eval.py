"""How good is the motion check? Confusion tables over simulated scenes and real labelled clips.

One command (from the repository root)::

    .venv/bin/python -m bench.motion_eval            # scenes + ../shared/data/video
    .venv/bin/python -m bench.motion_eval --clips DIR --probe-fps 5 --no-scenes

(a) Simulated scenes (``simulators/scenes.py``): every scene kind with several seeds and the
    nuisances the real world adds (sensor noise, IR grain, lamps switched, compression
    artefacts), watched like the probe watches: 320x240 at 5 fps, 8 s.
(b) Real clips in a folder laid out like ``../shared/data/video`` (``labels.json`` with segments
    and zones), scored exactly as its ``EVALUATION.md`` says: 8 s windows starting every 1 s
    (one window if the clip is shorter), each checked from scratch; a window overlapping ``fall``,
    ``on_floor``, ``empty`` or ``dark`` is dangerous and must never be cleared; a window whose
    activity is all in bed is clearable; everything else may go either way, but a light change
    alone must not be what clears it. Clips are decoded with PyAV into the kernel, frame by
    frame; nothing is written anywhere but the JSON of numbers.

Per clip it prints every window (run-length coded: consecutive windows with the same label,
truth and verdict on one line) with the verdict's reason, and beside the totals:

- the share of clearable windows cleared on the real clips (each probe rate) beside the
  simulated scenes' share, and the same for the check as it was before it judged darkness by
  detail (*before*: darkness by mean brightness alone, ``active_share`` 0.002), on the same
  frames in the same run (native rate);
- the windows of the infrared clips (``eventsleep_*``: real night footage from a camera above
  the bed, mean luma ~30, plenty to see) judged ``dark``, which must be none, and every
  ``dark``/``covered``/``frozen`` verdict on a window no label calls dark (a working camera sent
  to the patrol as "camera trouble").

Prints the tables, writes ``bench/results/motion_eval.json`` and exits 1 if any dangerous window
or scene was cleared without a human, or an infrared window was judged dark.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import numpy as np
import numpy.typing as npt

from simulators import scenes
from supervision.probe import luma_view
from vision import motion
from vision.verdict import DEFAULT_THRESHOLDS, Thresholds, Verdict, VerdictKind, decide

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CLIPS = ROOT.parent / "shared" / "data" / "video"
RESULTS = ROOT / "bench" / "results" / "motion_eval.json"
WINDOW_S = 8.0
SLIDE_S = 1.0
DANGEROUS = frozenset({"fall", "on_floor", "empty", "dark"})
KINDS = [k.value for k in VerdictKind]
TROUBLE = frozenset({VerdictKind.DARK, VerdictKind.COVERED, VerdictKind.FROZEN})
#: The shared clips that are infrared night footage (../shared/data/video/MANIFEST.md); only
#: used to report on them, never to decide anything.
INFRARED_PREFIX = "eventsleep_"
CLEARABLE_TARGET = 0.6  # share of clearable real-clip windows the check should clear


def before(thresholds: Thresholds) -> Thresholds:
    """The check as it was before it judged darkness and flatness by detail: dark by mean
    brightness alone, flat by variance alone, and a person's size twice today's."""
    return dataclasses.replace(
        thresholds, dark_detail=math.inf, flat_detail=-math.inf, active_share=0.002
    )


# -- decoding --------------------------------------------------------------------------------


def decode_luma(
    path: Path, fps_hint: float | None = None
) -> Iterator[tuple[float, npt.NDArray[np.uint8]]]:
    """Yield ``(t_s, luma)`` per decoded frame; ``luma`` is a view of the Y plane (stride
    handled; a converted copy for formats that do not store luma first), valid until the next
    frame. Raw streams without timestamps use ``fps_hint``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = fps_hint or float(stream.average_rate or 25)
        for index, frame in enumerate(container.decode(stream)):
            t_s = frame.time if frame.time is not None else index / fps
            # the probe's own conversion: a view of the Y plane, or gray from a packed RGB
            # format (the infrared clips are lossless BGRA, whose first plane is not luma)
            yield float(t_s), luma_view(frame)


def thin(
    frames: Iterator[tuple[float, npt.NDArray[np.uint8]]], fps: float | None
) -> Iterator[tuple[float, npt.NDArray[np.uint8]]]:
    """Keep at most ``fps`` frames per second (what a probe asking for a slow stream gets)."""
    if fps is None:
        yield from frames
        return
    next_t = -1.0
    for t_s, luma in frames:
        if t_s + 1e-6 >= next_t:
            next_t = max(next_t + 1.0 / fps, t_s) if next_t >= 0 else t_s + 1.0 / fps
            yield t_s, luma


# -- scoring of real clips -------------------------------------------------------------------


@dataclass
class WindowScore:
    clip: str
    start_s: float
    end_s: float
    truth: str  # dangerous | clearable | either
    dominant: str  # label with the most time in the window
    light_change_only: bool  # overlaps a light change and no activity
    verdict: Verdict
    overlaps_dark: bool = False  # some segment of the window is labelled dark

    @property
    def cleared(self) -> bool:
        return not self.verdict.needs_human


def window_starts(duration_s: float) -> list[float]:
    if duration_s <= WINDOW_S:
        return [0.0]
    count = int((duration_s - WINDOW_S) // SLIDE_S) + 1
    return [i * SLIDE_S for i in range(count)]


def classify(clip: dict[str, Any], start: float, end: float) -> tuple[str, str, bool]:
    """The window's truth per EVALUATION.md, its dominant label, and "light change only"."""
    overlapping = [s for s in clip["segments"] if s["start_s"] < end and start < s["end_s"]]
    labels = {s["label"] for s in overlapping}
    share: Counter[str] = Counter()
    for s in overlapping:
        share[s["label"]] += min(end, s["end_s"]) - max(start, s["start_s"])
    dominant = share.most_common(1)[0][0] if share else "none"
    light_only = "light_change" in labels and "activity" not in labels
    if labels & DANGEROUS:
        return "dangerous", dominant, light_only
    activity = [s for s in overlapping if s["label"] == "activity"]
    stills = [s for s in overlapping if s["label"] == "still"]
    has_bed = "bed" in clip.get("zones", {})
    if (
        has_bed
        and activity
        and all(s.get("in_bed") for s in activity)
        and all(s.get("in_bed") for s in stills)
        and labels <= {"activity", "still"}
    ):
        return "clearable", dominant, light_only
    return "either", dominant, light_only


def score_clip(
    folder: Path, clip: dict[str, Any], thresholds: Thresholds, probe_fps: float | None
) -> list[WindowScore]:
    """Every window of one clip, each watched by its own fresh kernel state."""
    zones = tuple(
        motion.Zone(name, tuple((float(x), float(y)) for x, y in polygon))
        for name, polygon in clip.get("zones", {}).items()
    )
    duration = float(clip["duration_s"])
    starts = window_starts(duration)
    states: dict[float, motion.MotionState] = {}
    results: dict[float, list[motion.FrameResult]] = {s: [] for s in starts}
    frames = thin(decode_luma(folder / clip["file"], clip.get("fps")), probe_fps)
    for t_s, luma in frames:
        for start in starts:
            if not start <= t_s < start + WINDOW_S:
                continue
            state = states.get(start)
            if state is None:
                state = motion.MotionState(luma.shape[1], luma.shape[0], zones, thresholds)
                states[start] = state
            results[start].append(motion.step(state, luma, t_s - start))
    scores = []
    for start in starts:
        end = min(duration, start + WINDOW_S)
        truth, dominant, light_only = classify(clip, start, end)
        verdict = decide(results[start], window_s=end - start, thresholds=thresholds)
        dark = any(
            s["label"] == "dark" and s["start_s"] < end and start < s["end_s"]
            for s in clip["segments"]
        )
        scores.append(
            WindowScore(clip["file"], start, end, truth, dominant, light_only, verdict, dark)
        )
    return scores


def summarise_windows(scores: list[WindowScore]) -> dict[str, Any]:
    def count(truth: str, *, cleared: bool | None = None) -> int:
        return sum(
            1 for s in scores if s.truth == truth and (cleared is None or s.cleared == cleared)
        )

    clearable = count("clearable")
    return {
        "windows": len(scores),
        "dangerous": count("dangerous"),
        "dangerous_cleared": count("dangerous", cleared=True),
        "clearable": clearable,
        "clearable_cleared": count("clearable", cleared=True),
        "clearable_cleared_share": (
            round(count("clearable", cleared=True) / clearable, 3) if clearable else None
        ),
        "either": count("either"),
        "either_cleared": count("either", cleared=True),
        "either_cleared_light_change_only": sum(
            1 for s in scores if s.truth == "either" and s.cleared and s.light_change_only
        ),
    }


def evaluate_clips(
    folder: Path, thresholds: Thresholds, probe_fps: float | None, only: set[str] | None = None
) -> dict[str, Any]:
    labels = json.loads((folder / "labels.json").read_text())
    per_clip: dict[str, Any] = {}
    everything: list[WindowScore] = []
    for clip in labels["clips"]:
        if only and clip["file"] not in only:
            continue
        scores = score_clip(folder, clip, thresholds, probe_fps)
        everything.extend(scores)
        per_clip[clip["file"]] = {
            **summarise_windows(scores),
            "verdicts": dict(Counter(s.verdict.kind.value for s in scores)),
            "dangerous_cleared_at_s": [
                s.start_s for s in scores if s.truth == "dangerous" and s.cleared
            ],
            "windows_detail": [
                {
                    "start_s": s.start_s,
                    "end_s": round(s.end_s, 3),
                    "truth": s.truth,
                    "dominant": s.dominant,
                    "verdict": s.verdict.kind.value,
                    "reason": s.verdict.reason.value,
                    "cleared": s.cleared,
                }
                for s in scores
            ],
        }
    infrared = [s for s in everything if s.clip.startswith(INFRARED_PREFIX)]
    return {
        "folder": str(folder),
        "probe_fps": probe_fps,
        "total": summarise_windows(everything),
        "infrared_windows": len(infrared),
        "infrared_dark": sum(s.verdict.kind is VerdictKind.DARK for s in infrared),
        "trouble_without_dark_label": sum(
            s.verdict.kind in TROUBLE and not s.overlaps_dark for s in everything
        ),
        "clips": per_clip,
        "verdict_by_dominant_label": confusion(
            [(s.dominant, s.verdict.kind.value) for s in everything]
        ),
        "needs_human": confusion(
            [(s.truth, "cleared" if s.cleared else "escalated") for s in everything]
        ),
        "reasons": dict(Counter(s.verdict.reason.value for s in everything)),
    }


# -- scoring of simulated scenes -------------------------------------------------------------


@dataclass
class SceneScore:
    name: str
    truth: str
    expected: str
    verdict: Verdict

    @property
    def cleared(self) -> bool:
        return not self.verdict.needs_human


@dataclass(frozen=True)
class SceneCase:
    kind: scenes.SceneKind
    nuisances: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.nuisances.items()))
        return f"{self.kind.value}[{extra}]" if extra else self.kind.value


def scene_cases(quick: bool) -> list[SceneCase]:
    nuisances: list[dict[str, Any]] = [
        {},
        {"noise": 6.0},
        {"ir": True},
        {"lamp_switch_s": 3.0},
        {"compression": 12},
        {"noise": 4.0, "compression": 10, "lamp_switch_s": 5.0},
    ]
    if quick:
        nuisances = nuisances[:3]
    return [SceneCase(kind, n) for kind in scenes.SceneKind for n in nuisances]


def score_scene(case: SceneCase, seed: int, thresholds: Thresholds) -> SceneScore:
    scene = scenes.Scene(case.kind, seed=seed, **case.nuisances)
    width, height, fps = 320, 240, 5.0
    polygons = scene.zones(width, height)
    zones = tuple(motion.Zone(name, polygon) for name, polygon in polygons.items())
    state = motion.MotionState(width, height, zones, thresholds)
    results = []
    for i in range(int(WINDOW_S * fps)):
        t_s = i / fps
        results.append(motion.step(state, scene.luma(t_s, width, height), t_s))
    verdict = decide(results, window_s=WINDOW_S, thresholds=thresholds)
    truth = scene.truth
    label = "dangerous" if truth.is_dangerous else "clearable" if truth.is_clearable else "either"
    return SceneScore(case.name, label, truth.expected, verdict)


def evaluate_scenes(thresholds: Thresholds, seeds: int, quick: bool) -> dict[str, Any]:
    scores = [
        score_scene(case, seed, thresholds) for case in scene_cases(quick) for seed in range(seeds)
    ]
    per_scene: dict[str, Any] = {}
    for s in scores:
        row = per_scene.setdefault(
            s.name,
            {
                "truth": s.truth,
                "expected": s.expected,
                "verdicts": Counter(),
                "cleared": 0,
                "runs": 0,
            },
        )
        row["verdicts"][s.verdict.kind.value] += 1
        row["cleared"] += s.cleared
        row["runs"] += 1
    for row in per_scene.values():
        row["verdicts"] = dict(row["verdicts"])
    clearable = [s for s in scores if s.truth == "clearable"]
    return {
        "runs": len(scores),
        "dangerous": sum(s.truth == "dangerous" for s in scores),
        "dangerous_cleared": sum(s.truth == "dangerous" and s.cleared for s in scores),
        "clearable": len(clearable),
        "clearable_cleared": sum(s.cleared for s in clearable),
        "clearable_cleared_share": (
            round(sum(s.cleared for s in clearable) / len(clearable), 3) if clearable else None
        ),
        "verdict_accuracy": round(
            sum(s.verdict.kind.value == s.expected for s in scores) / len(scores), 3
        ),
        "verdict_by_expected": confusion([(s.expected, s.verdict.kind.value) for s in scores]),
        "per_verdict": precision_recall([(s.expected, s.verdict.kind.value) for s in scores]),
        "needs_human": confusion(
            [(s.truth, "cleared" if s.cleared else "escalated") for s in scores]
        ),
        "scenes": per_scene,
    }


# -- tables ----------------------------------------------------------------------------------


def confusion(pairs: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for truth, predicted in pairs:
        row = table.setdefault(truth, {})
        row[predicted] = row.get(predicted, 0) + 1
    return table


def precision_recall(pairs: list[tuple[str, str]]) -> dict[str, dict[str, float | int]]:
    """Per verdict kind: precision, recall and support (how many truly were that kind)."""
    out: dict[str, dict[str, float | int]] = {}
    for kind in KINDS:
        predicted = sum(p == kind for _, p in pairs)
        actual = sum(t == kind for t, _ in pairs)
        hits = sum(t == p == kind for t, p in pairs)
        if predicted or actual:
            out[kind] = {
                "precision": round(hits / predicted, 3) if predicted else 0.0,
                "recall": round(hits / actual, 3) if actual else 0.0,
                "support": actual,
            }
    return out


def share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({100.0 * part / whole:.1f} %)" if whole else "0 of 0"


def format_table(title: str, table: dict[str, dict[str, int]]) -> str:
    columns = sorted(
        {c for row in table.values() for c in row},
        key=lambda c: KINDS.index(c) if c in KINDS else len(KINDS),
    )
    head = f"{title:<22}" + "".join(f"{c:>11}" for c in columns)
    lines = [head, "-" * len(head)]
    for truth in sorted(table):
        row = table[truth]
        lines.append(f"{truth:<22}" + "".join(f"{row.get(c, 0):>11}" for c in columns))
    return "\n".join(lines)


def run(
    *,
    clips: Path | None = DEFAULT_CLIPS,
    probe_fps: tuple[float | None, ...] = (None, 5.0),
    with_scenes: bool = True,
    seeds: int = 3,
    quick: bool = False,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    with_before: bool = True,
) -> dict[str, Any]:
    """Evaluate and return the report (also what ``main`` writes as JSON)."""
    started = time.perf_counter()
    report: dict[str, Any] = {"window_s": WINDOW_S, "slide_s": SLIDE_S}
    if with_scenes:
        report["scenes"] = evaluate_scenes(thresholds, 1 if quick else seeds, quick)
    if clips is not None:
        report["clips"] = [evaluate_clips(clips, thresholds, fps) for fps in probe_fps]
        if with_before:
            report["before"] = evaluate_clips(clips, before(thresholds), None)
    failures = report.get("scenes", {}).get("dangerous_cleared", 0) + sum(
        c["total"]["dangerous_cleared"] for c in report.get("clips", [])
    )
    infrared_dark = sum(c["infrared_dark"] for c in report.get("clips", []))
    report["dangerous_cleared"] = failures
    report["infrared_dark"] = infrared_dark
    report["clearable_cleared_share"] = {
        **{
            ("real_native" if c["probe_fps"] is None else f"real_{c['probe_fps']:g}fps"): c[
                "total"
            ]["clearable_cleared_share"]
            for c in report.get("clips", [])
        },
        "scenes": report.get("scenes", {}).get("clearable_cleared_share"),
        "before_real_native": report.get("before", {})
        .get("total", {})
        .get("clearable_cleared_share"),
        "target_real": CLEARABLE_TARGET,
    }
    report["passed"] = failures == 0 and infrared_dark == 0
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


def print_report(report: dict[str, Any]) -> None:
    if "scenes" in report:
        sc = report["scenes"]
        print(f"\n== simulated scenes: {sc['runs']} runs (320x240, 5 fps, 8 s) ==")
        print(format_table("expected \\ verdict", sc["verdict_by_expected"]))
        print()
        print(format_table("truth \\ check", sc["needs_human"]))
        print()
        print(f"{'verdict':<12}{'precision':>10}{'recall':>8}{'support':>9}")
        for kind, pr in sc["per_verdict"].items():
            print(f"{kind:<12}{pr['precision']:>10.2f}{pr['recall']:>8.2f}{pr['support']:>9}")
        print(
            f"dangerous scenes cleared without a human: "
            f"{share(sc['dangerous_cleared'], sc['dangerous'])}; clearable cleared: "
            f"{share(sc['clearable_cleared'], sc['clearable'])}; "
            f"verdict accuracy {sc['verdict_accuracy']:.0%}"
        )
    for ev in report.get("clips", []):
        fps = "native fps" if ev["probe_fps"] is None else f"{ev['probe_fps']:g} fps"
        print(f"\n== real clips ({fps}): {ev['folder']} ==")
        print(
            f"{'clip':<40}{'windows':>8}{'danger':>8}{'d.clr':>6}{'clrbl':>6}{'c.clr':>6}"
            f"{'either':>7}{'e.clr':>6}{'e.lc':>5}  verdicts"
        )
        for name, c in ev["clips"].items():
            verdicts = " ".join(f"{k}:{v}" for k, v in sorted(c["verdicts"].items()))
            print(
                f"{name:<40}{c['windows']:>8}{c['dangerous']:>8}{c['dangerous_cleared']:>6}"
                f"{c['clearable']:>6}{c['clearable_cleared']:>6}{c['either']:>7}"
                f"{c['either_cleared']:>6}{c['either_cleared_light_change_only']:>5}  {verdicts}"
            )
        t = ev["total"]
        print(
            f"{'total':<40}{t['windows']:>8}{t['dangerous']:>8}{t['dangerous_cleared']:>6}"
            f"{t['clearable']:>6}{t['clearable_cleared']:>6}{t['either']:>7}"
            f"{t['either_cleared']:>6}{t['either_cleared_light_change_only']:>5}"
        )
        print()
        print(format_table("dominant \\ verdict", ev["verdict_by_dominant_label"]))
        print()
        print(format_table("truth \\ check", ev["needs_human"]))
        print(
            f"dangerous windows cleared without a human: "
            f"{share(t['dangerous_cleared'], t['dangerous'])}; clearable cleared: "
            f"{share(t['clearable_cleared'], t['clearable'])}"
        )
        print(
            f"\nper window ({fps}; 8 s each, or the whole clip): truth (label with the most "
            "time) -> verdict, reason: outcome"
        )
        for name, c in ev["clips"].items():
            print(f"  {name}")
            for line in window_lines(c["windows_detail"]):
                print(f"    {line}")
    print_summary(report)
    verdict = "PASS" if report["passed"] else "FAIL"
    print(
        f"\n{verdict}: {report['dangerous_cleared']} dangerous windows/scenes cleared, "
        f"{report['infrared_dark']} infrared windows judged dark ({report['elapsed_s']} s)"
    )


def window_lines(windows: list[dict[str, Any]]) -> list[str]:
    """One line per run of consecutive windows alike in truth, label, verdict and outcome."""
    lines: list[str] = []
    run: list[dict[str, Any]] = []

    def key(w: dict[str, Any]) -> tuple[Any, ...]:
        return (w["truth"], w["dominant"], w["verdict"], w["reason"], w["cleared"])

    def flush() -> None:
        if not run:
            return
        first, last = run[0], run[-1]
        starts = (
            f"{first['start_s']:g}-{first['end_s']:g} s"
            if len(run) == 1
            else f"start {first['start_s']:g}..{last['start_s']:g} s"
        )
        count = f" x{len(run)}" if len(run) > 1 else ""
        outcome = "CLEARED" if first["cleared"] else "escalated"
        lines.append(
            f"{starts:<20}{first['truth']:>10} ({first['dominant']}) -> {first['verdict']}, "
            f"{first['reason']}: {outcome}{count}"
        )

    for w in windows:
        if run and key(w) != key(run[-1]):
            flush()
            run = []
        run.append(w)
    flush()
    return lines


def print_summary(report: dict[str, Any]) -> None:
    clips = report.get("clips", [])
    if not clips:
        return
    print("\n== summary ==")
    print("clearable windows cleared (the real clips' share beside the simulated scenes'):")
    for ev in clips:
        t = ev["total"]
        fps = "native fps" if ev["probe_fps"] is None else f"{ev['probe_fps']:g} fps"
        print(f"  real clips, {fps:<12}{share(t['clearable_cleared'], t['clearable'])}")
    if "scenes" in report:
        sc = report["scenes"]
        print(f"  simulated scenes       {share(sc['clearable_cleared'], sc['clearable'])}")
    if "before" in report:
        t = report["before"]["total"]
        print(
            f"  before (brightness-only darkness, active_share 0.002; real clips, native fps): "
            f"{share(t['clearable_cleared'], t['clearable'])}"
        )
    print(f"  target on the real clips: at least {CLEARABLE_TARGET:.0%}")
    for ev in clips:
        fps = "native fps" if ev["probe_fps"] is None else f"{ev['probe_fps']:g} fps"
        print(
            f"infrared ({INFRARED_PREFIX}*) windows judged dark, {fps}: "
            f"{ev['infrared_dark']} of {ev['infrared_windows']}; camera trouble on windows "
            f"no label calls dark: {ev['trouble_without_dark_label']}"
        )
    if "before" in report:
        b = report["before"]
        print(
            f"before, native fps: infrared windows judged dark {b['infrared_dark']} of "
            f"{b['infrared_windows']}; camera trouble on windows no label calls dark: "
            f"{b['trouble_without_dark_label']}; dangerous cleared "
            f"{b['total']['dangerous_cleared']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--clips",
        type=Path,
        default=DEFAULT_CLIPS,
        help="folder with labels.json and the clips (default: %(default)s)",
    )
    parser.add_argument("--no-clips", action="store_true", help="only the simulated scenes")
    parser.add_argument("--no-scenes", action="store_true", help="only the clips")
    parser.add_argument(
        "--probe-fps",
        type=float,
        action="append",
        help="also evaluate clips thinned to this frame rate (repeatable); default: native and 5",
    )
    parser.add_argument("--native-only", action="store_true", help="clips at native fps only")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per simulated scene")
    parser.add_argument("--quick", action="store_true", help="fewer scenes and seeds")
    parser.add_argument(
        "--no-before", action="store_true", help="skip the check as it was before (baseline)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON report path")
    args = parser.parse_args(argv)
    fps: tuple[float | None, ...] = (
        (None,)
        if args.native_only
        else ((None, *args.probe_fps) if args.probe_fps else (None, 5.0))
    )
    report = run(
        clips=None if args.no_clips else args.clips,
        probe_fps=fps,
        with_scenes=not args.no_scenes,
        seeds=args.seeds,
        quick=args.quick,
        with_before=not args.no_before,
    )
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
