"""What a job trains: its steps, epochs and per-step metrics, shaped as the API reports them.

A step's values are a pure function of (job key, step), never of the order in which they are
asked for. Events, checkpoints, the results CSV and `truth_results()` therefore agree without
the world storing a row per step, and a results file built long after the job finished holds
exactly the numbers its metrics events showed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

METHODS = ("supervised", "dpo", "reinforcement")
CSV_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
REWARD_COLUMNS = ("train_reward_mean", "valid_reward_mean")

_MASK = (1 << 64) - 1


def noise(key: int, step: int, channel: int) -> float:
    """A uniform draw in [0, 1) addressed by (key, step, channel): splitmix64, a few int ops."""
    x = (key + step * 0x9E3779B97F4A7C15 + channel * 0xD1B54A32D192ED03) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((x ^ (x >> 31)) >> 11) / 9007199254740992.0


def _r(value: float) -> float:
    # 6 decimals: short in JSON and CSV, and `float(repr(x)) == x` round-trips through the CSV
    return round(value, 6)


@dataclass
class TrainingPlan:
    """One job's training: method, steps (planned and written so far) and epoch boundaries.

    Args:
        key: Noise key of the job's values.
        method: `supervised`, `dpo` or `reinforcement`.
        total_steps: Planned steps; raised when a caller writes past it.
        n_epochs: Epochs; each ends at `ceil(k * planned_steps / n_epochs)`.
        validation: Whether the job has a validation file (`valid_*` values exist).
        graders: Grader names of a reinforcement job, the top-level one first.
    """

    key: int
    method: str
    total_steps: int
    n_epochs: int
    validation: bool
    graders: Tuple[str, ...] = ()
    written: int = 0  # steps whose metrics events exist
    epoch_ends: Dict[int, int] = field(init=False)  # step -> epoch number
    scale: float = field(init=False)

    def __post_init__(self) -> None:
        planned, n = self.total_steps, self.n_epochs
        # fixed at planning: raising total_steps later must not change values already shown
        self.epoch_ends = {-(-k * planned // n): k for k in range(1, n + 1)}
        self.scale = max(planned, 1) / 2.5

    @property
    def reinforcement(self) -> bool:
        return self.method == "reinforcement"

    @property
    def overfits(self) -> bool:
        """About a third of the jobs with a validation file overfit: past the middle of
        training their validation loss turns up while the training loss keeps falling."""
        return self.validation and not self.reinforcement and noise(self.key, 0, 9) < 0.35

    def values(self, step: int) -> Dict[str, Optional[float]]:
        """The step's values in the results CSV's vocabulary (None where none exist)."""
        key, decay = self.key, 1.0 - math.exp(-step / self.scale)
        if self.method == "dpo":
            loss = 0.69 * (1.0 - 0.85 * decay) + 0.03 * noise(key, step, 0)
        else:
            loss = 2.1 * (1.0 - 0.92 * decay) + 0.06 * noise(key, step, 0)
        accuracy = min(0.99, 0.45 + 0.5 * decay + 0.02 * noise(key, step, 1))
        row: Dict[str, Optional[float]] = {
            "train_loss": _r(loss),
            "train_accuracy": _r(accuracy),
            "valid_loss": None,
            "valid_mean_token_accuracy": None,
        }
        if self.validation:
            overfit = 3.0 * max(0.0, decay - 0.6) if self.overfits else 0.0
            row["valid_loss"] = _r(loss * (1.04 + 0.1 * noise(key, step, 2)) + overfit)
            row["valid_mean_token_accuracy"] = _r(accuracy - 0.03 * noise(key, step, 3))
        if self.reinforcement:
            reward = min(1.0, 0.2 + 0.65 * decay + 0.05 * noise(key, step, 4))
            row["train_reward_mean"] = _r(reward)
            row["valid_reward_mean"] = (
                _r(reward - 0.06 * noise(key, step, 5)) if self.validation else None
            )
        return row

    def full_validation(self, step: int) -> Optional[Tuple[float, float]]:
        """(full_valid_loss, full_valid_mean_token_accuracy) at an epoch end, else None."""
        if not self.validation or step not in self.epoch_ends:
            return None
        row = self.values(step)
        key = self.key
        return (
            _r(row["train_loss"] * (1.05 + 0.03 * noise(key, step, 6))),
            _r(row["train_accuracy"] - 0.01 - 0.02 * noise(key, step, 7)),
        )

    def event_data(
        self, step: int, total_steps: int, null_metrics: bool
    ) -> Tuple[str, Dict[str, Any]]:
        """(message, data) of the step's `metrics` event; `total_steps` as when it was written."""
        row = self.values(step)
        if self.reinforcement:
            return self._reinforcement_event(step, total_steps, row)
        data: Dict[str, Any] = {
            "step": step,
            "total_steps": total_steps,
            "train_loss": row["train_loss"],
            "train_mean_token_accuracy": row["train_accuracy"],
        }
        if self.validation:
            data["valid_loss"] = row["valid_loss"]
            data["valid_mean_token_accuracy"] = row["valid_mean_token_accuracy"]
            self._add_full_validation(data, step, null_metrics)
        message = f"Step {step}/{total_steps}: training loss={row['train_loss']:.4f}"
        return message, data

    def _add_full_validation(self, into: Dict[str, Any], step: int, null_metrics: bool) -> None:
        full = self.full_validation(step)
        if full is not None:
            into["full_valid_loss"], into["full_valid_mean_token_accuracy"] = full
        elif null_metrics:
            into["full_valid_loss"] = into["full_valid_mean_token_accuracy"] = None

    def _reinforcement_event(
        self, step: int, total_steps: int, row: Dict[str, Optional[float]]
    ) -> Tuple[str, Dict[str, Any]]:
        key, reward = self.key, row["train_reward_mean"]
        scores: Dict[str, Any] = {"train_reward_mean": reward}
        if self.validation:
            scores["valid_reward_mean"] = row["valid_reward_mean"]
        graders = []
        for index, name in enumerate(self.graders):
            grader = {
                "name": name,
                "train_reward_mean": _r(reward * (0.9 + 0.2 * noise(key, step, 10 + index))),
            }
            if self.validation:
                grader["valid_reward_mean"] = _r(
                    row["valid_reward_mean"] * (0.9 + 0.2 * noise(key, step, 20 + index))
                )
            graders.append(grader)
        scores["graders"] = graders
        step_seconds = _r(18 + 12 * noise(key, step, 8))
        data = {
            "step": step,
            "total_steps": total_steps,
            "scores": scores,
            "usage": {
                "grader_prompt_tokens": 20_000 + int(8_000 * noise(key, step, 9)),
                "grader_completion_tokens": 2_000 + int(1_500 * noise(key, step, 30)),
                "train_reasoning_tokens_mean": round(600 + 500 * noise(key, step, 31), 2),
            },
            "errors": {"grader_error_rate": round(0.03 * noise(key, step, 32), 4)},
            "timing": {
                "step_seconds": step_seconds,
                "sampling_seconds": _r(step_seconds * 0.55),
                "grading_seconds": _r(step_seconds * 0.3),
            },
        }
        return f"Step {step}/{total_steps}: train reward mean={reward:.4f}", data

    def checkpoint_metrics(self, step: int, null_metrics: bool) -> Dict[str, Any]:
        """A checkpoint's `metrics` at `step`: the supervised shape (floats, `step` too)."""
        row = self.values(step)
        metrics: Dict[str, Any] = {
            "step": float(step),
            "train_loss": row["train_loss"],
            "train_mean_token_accuracy": row["train_accuracy"],
        }
        if self.validation:
            metrics["valid_loss"] = row["valid_loss"]
            metrics["valid_mean_token_accuracy"] = row["valid_mean_token_accuracy"]
            self._add_full_validation(metrics, step, null_metrics)
        if self.reinforcement:
            metrics["train_reward_mean"] = row["train_reward_mean"]
            if self.validation:
                metrics["valid_reward_mean"] = row["valid_reward_mean"]
        return metrics

    # ---- results file -------------------------------------------------------------------------

    def columns(self) -> Tuple[str, ...]:
        return CSV_COLUMNS + (REWARD_COLUMNS if self.reinforcement else ())

    def result_rows(self, steps: int) -> List[Dict[str, Any]]:
        """Rows 1..steps of the results CSV, as values (`step` an int)."""
        names = self.columns()[1:]
        rows = []
        for step in range(1, steps + 1):
            values = self.values(step)
            rows.append({"step": step, **{name: values[name] for name in names}})
        return rows

    def result_csv(self, steps: int) -> bytes:
        """The results CSV: header, one line per step, empty cells where a value does not exist."""
        columns = self.columns()
        lines = [",".join(columns)]
        for row in self.result_rows(steps):
            cells = (("" if row[c] is None else repr(row[c])) for c in columns[1:])
            lines.append(f"{row['step']}," + ",".join(cells))
        return ("\n".join(lines) + "\n").encode()
