"""Readable printing of configs: repr, str, and the flattened ``path = value`` listing."""

from __future__ import annotations

import textwrap

import nemo_run_k8s as run
from nemo_run_k8s.config.buildables import flatten, format_flat
from tests.config.standins import AdamW, DataModule, Llama3Config8B, LlamaModel, TrainingJob


def sample() -> run.Config:
    return run.Config(
        TrainingJob,
        model=run.Config(LlamaModel, config=run.Config(Llama3Config8B, seq_length=16384)),
        data=[run.Config(DataModule, batch_size=8), {"k": (1, "x")}],
        optimizer=run.Partial(AdamW, lr=3e-4),
    )


def test_repr_is_fiddles_one_line_per_argument_form():
    assert repr(sample()) == textwrap.dedent(
        """\
        <Config[TrainingJob(
          model=<Config[LlamaModel(config=<Config[Llama3Config8B(seq_length=16384)]>)]>,
          data=[<Config[DataModule(batch_size=8)]>, {'k': (1, 'x')}],
          optimizer=<Partial[AdamW(lr=0.0003)]>)]>"""
    )


def test_str_is_an_indented_tree():
    assert str(sample()) == textwrap.dedent(
        """\
        Config[TrainingJob](
          model=Config[LlamaModel](
            config=Config[Llama3Config8B](
              seq_length=16384,
            ),
          ),
          data=[
            Config[DataModule](
              batch_size=8,
            ),
            {'k': (1, 'x')},
          ],
          optimizer=Partial[AdamW](
            lr=0.0003,
          ),
        )"""
    )
    assert str(run.Config(DataModule)) == "Config[DataModule]()"


def test_flat_listing_has_one_path_per_value():
    m = "tests.config.standins"
    assert format_flat(sample()).splitlines() == [
        f". = Config[{m}.TrainingJob]",
        f"model = Config[{m}.LlamaModel]",
        f"model.config = Config[{m}.Llama3Config8B]",
        "model.config.seq_length = 16384",
        f"data[0] = Config[{m}.DataModule]",
        "data[0].batch_size = 8",
        "data[1]['k'][0] = 1",
        "data[1]['k'][1] = 'x'",
        f"optimizer = Partial[{m}.AdamW]",
        "optimizer.lr = 0.0003",
    ]


def test_flatten_lists_empty_containers_and_shows_shared_nodes_once():
    shared = run.Config(DataModule, batch_size=4)
    cfg = run.Config(TrainingJob, model=[], data=shared, trainer=shared)
    # Arguments follow TrainingJob's signature order: model, trainer, data.
    assert format_flat(cfg).splitlines()[1:] == [
        "model = []",
        "trainer = Config[tests.config.standins.DataModule]",
        "trainer.batch_size = 4",
        "data = <shared with trainer>",
    ]
    assert dict(flatten(cfg))["model"] == []
