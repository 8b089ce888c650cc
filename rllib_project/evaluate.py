"""``rllib-project evaluate``: trained policies side by side with the yardsticks.

Every policy runs greedily from **every** valid row of the CSV; next to it the exact
optimal planner, the greedy one-step look-ahead, do-nothing and random, in the same
action mode family (discrete / continuous; ``discrete_flat`` is the same decision as
``discrete``). ``moves/opt`` is the policy's total moves to band divided by the
planner's over the rows both solve: 1.00 is optimal. ``moves`` counts until the
temperature is in the band and stays there (on a lagging plant, passing through does
not count). ``actuations`` is the mean number of moves that change a setting per start
(an operator's interventions), ``act/opt`` their total divided by the planner's over
the rows it solves: a policy that saws at the valves shows here. A trained policy is
scored as it is served (:mod:`rllib_project.scoring`): under the advice's rule (inside
the band and staying there: keep every setting), which is what ``recommend`` and the
server tell an operator, so its actuations are the interventions the advice asks for.
Its second row, ``NAME (raw)``, is the network's own actions without that rule; as
training episodes on a plant without lag end once the reading holds in the band
(``env.end_on_hold``), the network is not trained to keep still there and its raw row
may leave the band. A third row, ``NAME (advised)``, adds the advice's move rule
(:meth:`env.plant.Plant.advice_move`: "land" without lag, ``env.land_in_one_move``;
"centre" on a lagging plant, ``env.centre_settling``): the advice an operator gets,
which the score leaves out (:mod:`rllib_project.scoring`).
An experiment with several datasets gets one such table per dataset (``--dataset
NAME``: one of them).

For an experiment folder it also gives the comparison over all its runs (every seed,
not only the best checkpoints): IQM and mean with 95% bootstrap intervals, the
probability of improvement between algorithms, performance profiles
(:mod:`rllib_project.comparison`); ``--json`` returns it under ``aggregate``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from env.baselines import FunctionPolicy, baseline_policies
from env.evaluation import Rollouts
from env.files import json_safe
from env.yardstick import matching_yardstick, planning_mode
from rllib_project.checkpoints import (
    LoadedPolicy,
    is_experiment,
    load_policies,
    read_manifest,
    resolve_source,
)
from rllib_project.comparison import Comparison, compare, format_comparison
from rllib_project.scoring import PlantScorer, PolicyMetrics

RAW_KIND = "raw"
RAW_SUFFIX = "(raw)"
"""A trained policy's own actions, without the advice's rule (inside the band and
staying: keep all) that ``recommend``, the server and the scores apply."""
ADVISED_KIND = "advised"
ADVISED_SUFFIX = "(advised)"
"""A trained policy with the advice's move rule ("land" or "centre") on top of the
hold rule: what ``recommend`` and the server advise (the score leaves it out)."""


@dataclass(frozen=True)
class Column:
    label: str
    value: Callable[[PolicyMetrics], float]
    fmt: str


COLUMNS = (
    Column("success", lambda m: m.success_rate, "{:.1%}"),
    Column("of solvable", lambda m: m.success_rate_solvable, "{:.1%}"),
    Column("moves", lambda m: m.mean_moves_to_band, "{:.2f}"),
    Column("moves/opt", lambda m: m.moves_ratio, "{:.2f}"),
    Column("actuations", lambda m: m.mean_actuations, "{:.2f}"),
    Column("act/opt", lambda m: m.actuations_ratio, "{:.2f}"),
    Column("in band", lambda m: m.time_in_band, "{:.1%}"),
    Column("return", lambda m: m.mean_return, "{:.1f}"),
)


def mode_family(action_mode: str) -> str:
    return "continuous" if action_mode == "continuous" else "discrete"


@dataclass
class EvaluationRow:
    policy: str
    kind: str
    """"trained" (as served), "raw" (:data:`RAW_KIND`), "advised" (:data:`ADVISED_KIND`)
    or "baseline"."""
    action_mode: str
    metrics: PolicyMetrics
    rollouts: Rollouts
    source: str = ""
    dataset: str = ""
    """The dataset's name in the experiment (empty for a single checkpoint or export)."""
    proven_minimal: float | None = None
    """The planner's row: share of rows whose fewest moves are proven minimal."""

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-safe data: a NaN or infinite metric (nothing to average, or no
        finite ratio) becomes None, since JSON has no NaN or Infinity."""
        extra = {} if self.proven_minimal is None else {"proven_minimal": self.proven_minimal}
        return json_safe(
            {
                "dataset": self.dataset,
                "policy": self.policy,
                "kind": self.kind,
                "action_mode": self.action_mode,
                "source": self.source,
                **self.metrics.to_dict(),
                **extra,
            }
        )


@dataclass(frozen=True)
class Evaluation:
    """What ``evaluate`` shows: the policies beside the baselines, and for an experiment
    the comparison over all its runs."""

    rows: list[EvaluationRow]
    comparison: Comparison | None
    """None for a single checkpoint or export: one policy has no runs to aggregate."""

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(row.dataset for row in self.rows))


def format_json(evaluation: Evaluation) -> str:
    """``evaluate --json``: ``{"rows": [...], "aggregate": {...} | null}``, strict JSON
    (never NaN or Infinity)."""
    comparison = evaluation.comparison
    data = {
        "rows": [row.to_dict() for row in evaluation.rows],
        "aggregate": None if comparison is None else comparison.to_json(),
    }
    return json.dumps(data, indent=1, allow_nan=False, ensure_ascii=False)


def format_evaluation(evaluation: Evaluation) -> str:
    """``evaluate``'s text: a table per dataset, then the comparison over the runs."""
    parts = []
    for dataset in evaluation.datasets:
        rows = [row for row in evaluation.rows if row.dataset == dataset]
        title = f"dataset {dataset}:\n" if dataset and len(evaluation.datasets) > 1 else ""
        parts.append(title + format_table(rows))
    if evaluation.comparison is not None:
        parts.append(format_comparison(evaluation.comparison))
    return "\n\n".join(parts)


def policy_scorer(policy: LoadedPolicy) -> PlantScorer:
    """A scorer over every start row, replaying the experiment's saved yardstick when
    it fits the policy's plant (else planning, with a line on stderr: it can take a
    while on deep plants, and stdout may be JSON)."""
    plant = policy.plant
    mode = planning_mode(policy.action_mode)
    yardstick = matching_yardstick(policy.yardstick, plant, mode)
    if yardstick is None:
        print(
            f"planning {len(plant.start_indices)} rows ({mode} moves) for {policy.name}: "
            "no saved yardstick fits its plant ...",
            file=sys.stderr,
            flush=True,
        )
    return PlantScorer(plant, policy.action_mode, plant.start_indices, yardstick)


def evaluate_policies(policies: list[LoadedPolicy], seed: int = 0) -> list[EvaluationRow]:
    """Per dataset: its trained policies first, then the baselines of each action-mode
    family used there."""
    datasets = dict.fromkeys(policy.dataset for policy in policies)
    return [
        row
        for dataset in datasets
        for row in _evaluate_plant([p for p in policies if p.dataset == dataset], seed)
    ]


def _evaluate_plant(policies: list[LoadedPolicy], seed: int) -> list[EvaluationRow]:
    """Policies of one plant, then the baselines on the same rows."""
    rows: list[EvaluationRow] = []
    scorers: dict[str, PlantScorer] = {}
    dataset = policies[0].dataset
    for policy in policies:
        scorer = policy_scorer(policy)
        scorers.setdefault(mode_family(policy.action_mode), scorer)
        policy_batch = _as_batch_policy(policy)
        for kind, name, hold, move_rule in (
            ("trained", policy.name, True, False),
            (RAW_KIND, f"{policy.name} {RAW_SUFFIX}", False, False),
            (ADVISED_KIND, f"{policy.name} {ADVISED_SUFFIX}", True, True),
        ):
            if move_rule and not scorer.plant.has_advice_move_rule:
                continue
            result = scorer.rollouts(policy_batch, hold_in_band=hold, move_rule=move_rule)
            rows.append(
                EvaluationRow(
                    name,
                    kind,
                    policy.action_mode,
                    scorer.metrics(result),
                    result,
                    str(policy.source),
                    dataset,
                )
            )
    for family, scorer in scorers.items():
        for baseline in baseline_policies(scorer.plant, scorer.codec, seed):
            result = (
                scorer.planner_rollouts if baseline.name == "planner" else scorer.rollouts(baseline)
            )
            proven = float(scorer.planner.exact.mean()) if baseline.name == "planner" else None
            rows.append(
                EvaluationRow(
                    f"{baseline.name}",
                    "baseline",
                    family,
                    scorer.metrics(result),
                    result,
                    dataset=dataset,
                    proven_minimal=proven,
                )
            )
    return rows


def _as_batch_policy(policy: LoadedPolicy) -> FunctionPolicy:
    return FunctionPolicy(policy.name, policy.act)


def evaluate_source(source: str | Path, dataset: str | None = None) -> Evaluation:
    """Evaluate what a source names; an experiment (all datasets, or ``dataset``) also
    gets the comparison over its runs."""
    rows = evaluate_policies(load_policies(source, dataset))
    path = resolve_source(source)
    if not is_experiment(path):
        return Evaluation(rows, None)
    manifest = read_manifest(path)
    return Evaluation(rows, compare(manifest, manifest.dataset_name(dataset)))


def fmt_cell(fmt: str, value: float) -> str:
    if math.isnan(value):
        return "-"
    return "inf" if math.isinf(value) else fmt.format(value)


def format_table(rows: list[EvaluationRow], markdown: bool = False) -> str:
    headers = ["policy", "actions", *(column.label for column in COLUMNS)]
    body = []
    for row in rows:
        cells = [row.policy, row.action_mode]
        for column in COLUMNS:
            value = column.value(row.metrics)
            cells.append(fmt_cell(column.fmt, value))
        body.append(cells)
    notes = [
        f"planner ({row.action_mode}): fewest moves proven minimal on "
        f"{row.proven_minimal:.1%} of the rows"
        for row in rows
        if row.proven_minimal is not None
    ]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join([*lines, *(["", *notes] if notes else [])])
    widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, body), *notes])
