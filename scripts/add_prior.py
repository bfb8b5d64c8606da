"""An existing run's best model + the untrained ZBL prior, as a new run directory, exported.

    python scripts/add_prior.py runs/cpnx-final runs/exp/v3-zbl 0.4 0.9   # -> runs/exp/v3-zbl.pt

Used for the first active-learning round of the shipped model (docs/training.md): the prior is
zero above the switch-off distance, so the model is unchanged on every training frame.
`pymotor train --init-from RUN --prior zbl` does the same as part of training.
"""
import json
import shutil
import sys
from pathlib import Path


def main(argv=None) -> int:
    import torch

    from pymotor.train import export
    from pymotor.train.model import prior_modules

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst, on, off = Path(args[0]), Path(args[1]), float(args[2]), float(args[3])
    dst.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((src / "run.json").read_text())
    hp = cfg["config"]["hyperparameters"]
    hp.update(prior="zbl", prior_switch_on=on, prior_switch_off=off)
    (dst / "run.json").write_text(json.dumps(cfg, indent=1))
    shutil.copytree(src / "splits", dst / "splits", dirs_exist_ok=True)
    m = torch.load(src / "best_model.pt", map_location="cpu", weights_only=False)
    outs = list(m.output_modules)
    m.output_modules = torch.nn.ModuleList(outs[:-1] + prior_modules(hp, cfg["config"]["energy_unit"]) + outs[-1:])
    torch.save(m, dst / "best_model.pt")
    print(export(dst, dst.with_suffix(".pt"), metrics=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
