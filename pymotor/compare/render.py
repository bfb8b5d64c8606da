"""HTML of the comparison report: warnings first, then the headline table, the figures and
the detail tables (units in the column headers). Reads only the JSON-ready ``summary``."""
from __future__ import annotations

import html
import re

_NUMBER = re.compile(r"^[-+−]?[\d.\u2009]+(e[-+]?\d+)?( ± [\d.e+-]+)?$")

_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 9px;"
    "text-align:right}th{background:#eee}td:first-child,th:first-child{text-align:left}"
    "td.text{text-align:left}img{max-width:100%;border:1px solid #ddd}figure{margin:1em 0}"
    "figcaption{color:#444;font-size:.95em}"
    ".warnings{border:2px solid #b00020;background:#fdecee;padding:.5em 1em;margin:1em 0}"
    ".warnings h2{color:#b00020;margin:.2em 0}.allgood{border:1px solid #2e7d32;background:#edf7ee;"
    "padding:.4em 1em;margin:1em 0}.headline td{text-align:left}.headline td:first-child{font-weight:600}"
    "code{font-size:.95em}.muted{color:#555}"
)


def _esc(x) -> str:
    return html.escape(str(x))


def fmt(v, digits: int = 4) -> str:
    """A number for a table cell: ``digits`` significant digits; '—' for missing."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}".replace(",", "\u2009")
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"
    return str(v)


def _fixed(v, decimals: int) -> str:
    return "—" if v is None else f"{v:.{decimals}f}"


def table(headers, rows, cls: str = "") -> str:
    """``rows``: lists of cells (numbers are formatted, strings escaped)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)

    def cell(v):
        if isinstance(v, str):
            return f"<td>{_esc(v)}</td>" if _NUMBER.match(v) else f"<td class='text'>{_esc(v)}</td>"
        return f"<td>{_esc(fmt(v))}</td>"

    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    c = f" class='{cls}'" if cls else ""
    return f"<table{c}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pairs(rows) -> str:
    """Two-column table (quantity with unit, value)."""
    return table(["Quantity", "Value"], [[k, v] for k, v in rows if v is not None])


# ---- headline -------------------------------------------------------------------------------
def headline_rows(summary) -> list:
    """(quantity with unit, value as text) of the headline table."""
    h = summary.get("headline", {})
    ref, cand = summary["labels"]["reference"], summary["labels"]["candidate"]
    rows = []

    def pm(v, se):
        return None if v is None else (fmt(v) + (f" ± {fmt(se, 2)}" if se is not None else ""))

    if h.get("energy_mae_kcal_per_mol") is not None:
        n = h.get("test_frames")
        where = f" on {n} test frames" if n else ""
        rows.append((f"Energy MAE of {cand}{where} (kcal/mol)",
                     pm(h["energy_mae_kcal_per_mol"], h.get("energy_mae_se_kcal_per_mol"))))
        rows.append((f"Force MAE of {cand}{where} (kcal/mol/Å)",
                     pm(h.get("forces_mae_kcal_per_mol_per_A"), h.get("forces_mae_se_kcal_per_mol_per_A"))))
    else:
        rows.append(("Energy and force MAE", "no labelled test frames given (compare(test_metrics=...), "
                                             "--metrics)"))
    rows.append(("RMSF per atom, Pearson r", _fixed(h.get("rmsf_pearson_r"), 3)))
    rows.append(("Power spectrum, Pearson r", _fixed(h.get("power_spectrum_pearson_r"), 3)))
    for series, med in (h.get("rolling_pearson_r_median") or {}).items():
        if med:
            windows = " / ".join(k.replace("window_", "").replace("_steps", "") for k in med)
            rows.append((f"Rolling Pearson r of the {series.replace('_', ' ')}, median over windows of "
                         f"{windows} MD steps", " / ".join(_fixed(v, 3) for v in med.values())))
    rows.append(("Interatomic distance distribution, Jensen-Shannon distance (0 = same)",
                 _fixed(h.get("distances_jensen_shannon_distance"), 4)))
    rows.append(("Interatomic distance distribution, Wasserstein distance (Å)",
                 fmt(h.get("distances_wasserstein_distance_A"), 3)))
    rows.append(("Radius of gyration, Wasserstein distance (Å)",
                 fmt(h.get("radius_of_gyration_wasserstein_distance_A"), 3)))
    pops = h.get("conformer_populations") or {}
    if ref in pops and cand in pops:
        for name in pops[ref]:
            rows.append((f"Population of {name} ({ref} / {cand})",
                         f"{_fixed(pops[ref][name], 2)} / {_fixed(pops[cand].get(name), 2)}"))
    ms = h.get("ms_per_step") or {}
    if ms:
        rows.append(("MD cost (ms per step)", ", ".join(f"{k} {fmt(v, 3)}" for k, v in ms.items())))
        if h.get("speedup") is not None:
            rows.append((f"Speed-up of {cand} over {ref}", f"{fmt(h['speedup'], 3)}×"))
    else:
        rows.append(("MD cost (ms per step)", "not measured (compare(seconds_per_step=...), --ms-per-step, "
                                              "or a timings.json beside the files)"))
    rows.append(("Warnings (listed at the top)", str(h.get("n_warnings", len(summary.get("warnings", []))))))
    return [(k, "—" if v is None else v) for k, v in rows]


# ---- detail ----------------------------------------------------------------------------------
def _runs(summary):
    return [summary["labels"]["reference"], summary["labels"]["candidate"]]


def _detail_inputs(s):
    inp = s["inputs"]
    rows = [[inp[k]["label"], inp[k]["path"], inp[k]["n_frames"], inp[k]["n_atoms"], inp[k]["frame_interval_fs"],
             inp[k]["steps_per_frame"], inp[k]["duration_ps"], inp[k]["stride"]] for k in ("reference", "candidate")]
    return (table(["Run", "File", "Frames", "Atoms", "Frame interval (fs)", "MD steps per frame",
                   "Duration (ps)", "Stride"], rows)
            + f"<p>Frame-by-frame comparisons use the first {fmt(inp.get('n_common_frames'))} frames.</p>")


def _detail_energies(s):
    out = []
    for name, e in s["energies"].items():
        title = name.replace("_", " ")
        rows = [[r] + [_fixed(e[r].get(k), 3) for k in ("mean_eV", "std_eV", "min_eV", "max_eV")]
                for r in _runs(s) if r in e]
        d = e.get("difference", {})
        ref, cand = _runs(s)
        out.append(f"<h4>{_esc(title.capitalize())}</h4>"
                   + table(["Run", "Mean (eV)", "Standard deviation (eV)", "Min (eV)", "Max (eV)"], rows)
                   + pairs([(f"Mean difference {cand} − {ref} (eV)", d.get("mean_candidate_minus_reference_eV")),
                            ("RMS difference, frame by frame (eV)", d.get("rmse_eV")),
                            ("Pearson r, frame by frame", d.get("pearson_r"))]))
    return "".join(out)


def _detail_rolling(s):
    out = []
    for name, res in s["rolling_pearson"].items():
        rows = [[int(k.replace("window_", "").replace("_steps", "")), v.get("window_frames"), v.get("n_windows"),
                 v.get("n_undefined"), v.get("mean"), v.get("median"), v.get("min"), v.get("max"),
                 v.get("fraction_above_0_5")] for k, v in res.items()]
        if rows:
            out.append(f"<h4>{_esc(name.replace('_', ' ').capitalize())}</h4>" + table(
                ["Window (MD steps)", "Window (frames)", "Windows", "Undefined windows", "Mean r", "Median r",
                 "Min r", "Max r", "Fraction of windows with r > 0.5"], rows))
    return "".join(out) or "<p>No window fits into the common run.</p>"


def _detail_rmsf(s):
    d = s["rmsf"]
    rows = [[r, d[r]["mean_A"], d[r]["max_A"]] for r in _runs(s) if r in d]
    return (table(["Run", "Mean RMSF (Å)", "Max RMSF (Å)"], rows)
            + pairs([("Pearson r of the per-atom RMSF", d.get("pearson_r")),
                     ("Mean absolute difference (Å)", d.get("mae_A")),
                     ("Largest absolute difference (Å)", d.get("max_abs_difference_A"))])
            + "<p class='muted'>Per-atom values are in summary.json.</p>")


def _detail_distances(s):
    d = s["distances"]
    rows = [[r, d[r]["mean_A"], d[r]["min_A"], d[r]["max_A"], d[r]["n_distances"], d[r]["n_beyond_bins"]]
            for r in _runs(s) if r in d]
    return (table(["Run", "Mean distance (Å)", "Shortest (Å)", "Longest (Å)", "Distances counted",
                   "Beyond the histogram"], rows)
            + pairs([("Jensen-Shannon distance (0 = same, 1 = disjoint)", d.get("jensen_shannon_distance")),
                     ("Wasserstein distance (Å)", d.get("wasserstein_distance_A")),
                     ("Histogram bin width (Å)", d.get("bin_width_A"))]))


def _detail_rg(s):
    d = s["radius_of_gyration"]
    rows = [[r, d[r]["mean_A"], d[r]["std_A"], d[r]["min_A"], d[r]["max_A"]] for r in _runs(s) if r in d]
    return (table(["Run", "Mean (Å)", "Standard deviation (Å)", "Min (Å)", "Max (Å)"], rows)
            + pairs([("Wasserstein distance (Å)", d.get("wasserstein_distance_A")),
                     ("Jensen-Shannon distance", d.get("jensen_shannon_distance"))]))


def _detail_spectrum(s):
    d = s["power_spectrum"]
    rows = [[r, d[r]["peak_cm-1"], d[r]["resolution_cm-1"]] for r in _runs(s) if r in d]
    lo, hi = d.get("range_cm-1", [None, None])
    return (table(["Run", "Highest peak (cm⁻¹)", "Resolution (cm⁻¹)"], rows)
            + pairs([("Pearson r of the spectra", d.get("pearson_r")),
                     ("Range compared (cm⁻¹)", f"{fmt(lo)} – {fmt(hi)}")]))


def _detail_conformers(s):
    d = s["conformers"]
    if d.get("skipped"):
        return f"<p>Skipped: {_esc(d.get('reason', ''))}</p>"
    labels = d["labels"]
    rows = [[r] + [_fixed(d[r]["populations"][n], 3) for n in labels] + [d[r]["beta_mean_deg"], d[r]["delta_mean_deg"],
                                                             d[r]["n_transitions"]] for r in _runs(s) if r in d]
    return (table(["Run"] + [f"Population {n}" for n in labels] + ["Mean β (deg)", "Mean δ (deg)", "Transitions"],
                  rows)
            + f"<p class='muted'>β: dihedral of atoms {_esc(d['beta_atoms'])}; δ: dihedral of atoms "
              f"{_esc(d['delta_atoms'])} (0-based).</p>")


DETAIL = (("inputs", "Runs", _detail_inputs), ("energies", "Energies", _detail_energies),
          ("rolling_pearson", "Rolling Pearson r", _detail_rolling), ("rmsf", "RMSF", _detail_rmsf),
          ("distances", "Interatomic distances", _detail_distances),
          ("radius_of_gyration", "Radius of gyration", _detail_rg),
          ("power_spectrum", "Power spectra", _detail_spectrum), ("conformers", "Conformers", _detail_conformers))


# ---- page ------------------------------------------------------------------------------------
def page(summary, figures, captions) -> str:
    ref, cand = summary["labels"]["reference"], summary["labels"]["candidate"]
    inp = summary["inputs"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<link rel='icon' href='data:,'>",
        f"<title>pymotor compare: {_esc(cand)} vs {_esc(ref)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_esc(cand)} vs {_esc(ref)}</h1>",
        f"<p>{_esc(cand)}: <code>{_esc(inp['candidate']['path'])}</code> "
        f"({fmt(inp['candidate']['duration_ps'])} ps, {fmt(inp['candidate']['n_frames'])} frames); "
        f"{_esc(ref)} (reference): <code>{_esc(inp['reference']['path'])}</code> "
        f"({fmt(inp['reference']['duration_ps'])} ps, {fmt(inp['reference']['n_frames'])} frames).</p>",
    ]
    warnings = summary.get("warnings", [])
    if warnings:
        items = "".join(f"<li>{_esc(w['message'] if isinstance(w, dict) else w)}</li>" for w in warnings)
        parts.append(f"<div class='warnings' id='warnings' role='alert'><h2>{len(warnings)} warning"
                     f"{'s' if len(warnings) != 1 else ''}: the {_esc(cand)} run left the {_esc(ref)} "
                     f"run's physics</h2><ul>{items}</ul><p class='muted'>The numbers below describe a run "
                     "that failed in these ways; see <a href='#criteria'>how warnings are decided</a>.</p></div>")
    else:
        parts.append(f"<div class='allgood' id='warnings'>No warnings: the {_esc(cand)} run stayed within the "
                     f"{_esc(ref)} run's potential energy and temperature, kept its bonds and ran to the end "
                     "(<a href='#criteria'>criteria</a>).</div>")
    parts.append("<h2>Headline</h2>")
    parts.append(table(["Quantity", "Value"], headline_rows(summary), cls="headline"))
    parts.append("<h2>Figures</h2>")
    for name in figures:
        parts.append(f"<figure id='fig-{_esc(name)}'><img src='{_esc(name)}.png' alt='{_esc(name)}'>"
                     f"<figcaption>{_esc(captions.get(name, ''))}</figcaption></figure>")
    parts.append("<h2>Details</h2>")
    for key, title, render in DETAIL:
        if key in summary:
            parts.append(f"<h3 id='{key}'>{_esc(title)}</h3>")
            parts.append(render(summary))
    crit = summary.get("warning_criteria")
    if crit:
        items = "".join(f"<li><b>{_esc(k.replace('_', ' '))}</b>: {_esc(v)}</li>"
                        for k, v in crit.items() if isinstance(v, str))
        parts.append(f"<h3 id='criteria'>How warnings are decided (k = {_esc(fmt(crit.get('k_sigma')))})</h3>"
                     f"<ul>{items}</ul>")
    if summary.get("notes"):
        items = "".join(f"<li>{_esc(n)}</li>" for n in summary["notes"])
        parts.append(f"<h3>Notes</h3><ul>{items}</ul>")
    parts.append(f"<p class='muted'>Generated {_esc(summary['generated'])} by pymotor "
                 f"{_esc(summary['pymotor_version'])}. Every number is also in "
                 "<a href='summary.json'>summary.json</a>.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
