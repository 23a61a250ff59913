"""`convtrain inspect`: the model's layers, shapes, parameters and costs, without TensorFlow."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from convtrain.config.schema import Experiment
from convtrain.errors import ConfigError
from convtrain.layers.tensor import Step, fmt_shape
from convtrain.model.lint import warnings
from convtrain.model.plan import Plan, plan_model


@dataclass(frozen=True)
class Totals:
    trainable: int
    non_trainable: int
    macs: int

    @property
    def params(self) -> int:
        return self.trainable + self.non_trainable

    @property
    def flops(self) -> int:
        return 2 * self.macs  # one multiply and one add per MAC


def totals(plan: Plan) -> Totals:
    leaves = list(plan.leaves())
    return Totals(
        sum(s.trainable for s in leaves),
        sum(s.non_trainable for s in leaves),
        sum(s.macs for s in leaves),
    )


_BRANCH = re.compile(r"\.branches\[(\d+)\]\[\d+\]$")  # a layer of an inception branch


def _pair(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else fmt_shape(p)


def _row(depth: int, step: Step) -> dict[str, Any]:
    return {
        "path": step.path,
        "name": step.name,
        "type": step.kind,
        "branch": int(m.group(1)) if (m := _BRANCH.search(step.path)) else None,
        "depth": depth,
        "added": step.added or None,
        "output_shape": list(step.out.shape),
        "data_format": step.layout if step.out.spatial else None,
        "params": step.trainable + step.non_trainable,
        "trainable": step.trainable,
        "non_trainable": step.non_trainable,
        "macs": step.macs,
        "receptive_field": list(step.out.rf),
        "jump": list(step.out.jump),
    }


def report(experiment: Experiment, num_classes: int, classes_note: str) -> dict[str, Any]:
    """Everything inspect shows, as plain data (the JSON output)."""
    plan = plan_model(experiment, num_classes)
    if plan.problems:  # load_config already checked with the default class count
        raise ConfigError(plan.problems, source="model")
    t = totals(plan)
    return {
        "name": experiment.name,
        "input_shape": list(plan.input.shape),
        "num_classes": num_classes,
        "num_classes_source": classes_note,
        "layers": [_row(d, s) for d, s in plan.rows()],
        "totals": {
            "params": t.params,
            "trainable": t.trainable,
            "non_trainable": t.non_trainable,
            "macs": t.macs,
            "flops": t.flops,
        },
        "warnings": warnings(plan),
    }


def _human(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def format_table(data: dict[str, Any]) -> str:
    header = ("layer", "type", "output", "params", "MACs", "RF", "jump")
    rows = [("image", "input", fmt_shape(tuple(data["input_shape"])), "", "", "1", "1")]
    for r in data["layers"]:
        rows.append(
            (
                "  " * r["depth"] + r["name"] + ("*" if r["added"] else ""),
                r["type"] + (f" [b{r['branch']}]" if r["branch"] is not None else ""),
                fmt_shape(tuple(r["output_shape"]))
                + (" (NCHW)" if r["data_format"] == "channels_first" else ""),
                f"{r['params']:,}",
                _human(r["macs"]),
                _pair(tuple(r["receptive_field"])),
                _pair(tuple(r["jump"])),
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {3, 4, 5, 6}

    def line(row: Sequence[str]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    t = data["totals"]
    out = [
        f"{data['name']}: input {fmt_shape(tuple(data['input_shape']))}, "
        f"{data['num_classes']} classes ({data['num_classes_source']})",
        "",
        line(header),
        line(["-" * w for w in widths]),
        *(line(r) for r in rows),
        "",
        "* added by convtrain (transpose, residual projection/sum, concatenation, head); [bN]: inception branch N",
        "RF: receptive field in input pixels; jump: input pixels between adjacent outputs",
        "",
        f"params: {t['params']:,} ({t['trainable']:,} trainable, {t['non_trainable']:,} non-trainable)",
        f"MACs per image: {t['macs']:,} ({_human(t['macs'])}); FLOPs = 2 x MACs: {t['flops']:,} ({_human(t['flops'])})",
    ]
    if data["warnings"]:
        out += ["", f"warnings ({len(data['warnings'])}):", *(f"  - {w}" for w in data["warnings"])]
    return "\n".join(out)
