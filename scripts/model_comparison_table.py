"""Markdown table of several models' errors on common reference frames (docs/training.md).

Reads the JSON of ``pymotor evaluate MODEL... --data DB... --json`` (one file per frame set,
``{model: result}``) and prints one row per model: energy / force MAE ± SE over frames, in
kcal/mol and kcal/mol/Å, per frame set.

    python scripts/model_comparison_table.py "T300 test=runs/final/eval_T300test.json" \\
        "IND300=runs/final/eval_IND300.json" ...
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cell(res: dict) -> str:
    e, f = res["energy"], res["forces"]
    return f"{e['mae']:.3f} ± {e['mae_se']:.3f} / {f['mae']:.3f} ± {f['mae_se']:.3f}"


def table(sets: list[tuple[str, dict]], names: dict[str, str] | None = None) -> str:
    """Rows: models (in the order of the first set); columns: frame sets."""
    names = names or {}
    models = list(sets[0][1])
    head = "| model | " + " | ".join(f"{label} (n = {data[models[0]]['n_frames']})" for label, data in sets) + " |"
    lines = [head, "|---" * (len(sets) + 1) + "|"]
    for m in models:
        cells = [_cell(data[m]) if m in data else "—" for _, data in sets]
        lines.append(f"| {names.get(m, Path(m).stem)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sets", nargs="+", metavar="LABEL=FILE", help="a frame set's label and its evaluate JSON")
    args = ap.parse_args(argv)
    sets = []
    for item in args.sets:
        if "=" not in item:
            raise SystemExit(f"expected LABEL=FILE, got {item!r}")
        label, path = item.split("=", 1)
        data = json.loads(Path(path).read_text())
        if "energy" in data:  # a single model's result
            data = {data["model"]: data}
        sets.append((label, data))
    print(table(sets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
