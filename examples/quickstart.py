"""A small end-to-end example: a training-shaped task configured with run.Config / run.Partial.

    nemo-run-k8s run examples/quickstart.py:experiment optimizer.lr=0.01 trainer.max_epochs=3
    nemo-run-k8s run examples/quickstart.py:experiment --executor docker   # same job, in Docker

It fits a line y = 3x + 1 with plain-Python gradient descent (no torch needed), so it runs
anywhere, and prints the loss per epoch and returns the fitted parameters.
"""

from __future__ import annotations

import dataclasses
import os

import nemo_run_k8s as run


@dataclasses.dataclass
class SGD:
    lr: float = 0.05


@dataclasses.dataclass
class Trainer:
    max_epochs: int = 20
    log_every: int = 5


@dataclasses.dataclass
class LineData:
    num_points: int = 32
    slope: float = 3.0
    intercept: float = 1.0

    def points(self) -> list[tuple[float, float]]:
        xs = [i / self.num_points for i in range(self.num_points)]
        return [(x, self.slope * x + self.intercept) for x in xs]


def fit(trainer: Trainer, optimizer: SGD, data: LineData) -> dict[str, float]:
    """Fits y = w*x + b by gradient descent and returns the parameters and final loss."""
    w = b = 0.0
    points = data.points()
    loss = float("nan")
    for epoch in range(1, trainer.max_epochs + 1):
        grad_w = sum(2 * (w * x + b - y) * x for x, y in points) / len(points)
        grad_b = sum(2 * (w * x + b - y) for x, y in points) / len(points)
        w -= optimizer.lr * grad_w
        b -= optimizer.lr * grad_b
        loss = sum((w * x + b - y) ** 2 for x, y in points) / len(points)
        if epoch % trainer.log_every == 0 or epoch == trainer.max_epochs:
            print(f"epoch {epoch:4d}  loss {loss:.6f}  (rank {os.environ.get('RANK', '0')})")
    return {"w": round(w, 4), "b": round(b, 4), "loss": round(loss, 6)}


def experiment() -> run.Partial:
    """The job: fit() with its trainer, optimizer and data configured."""
    return run.Partial(
        fit,
        trainer=run.Config(Trainer, max_epochs=200, log_every=50),
        optimizer=run.Config(SGD, lr=0.5),
        data=run.Config(LineData),
    )


if __name__ == "__main__":
    job = run.run(experiment(), run.LocalExecutor())
    print(job.result())
