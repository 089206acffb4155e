"""Item 5: job ids are matched literally; an empty id or an ambiguous prefix is an error."""

from __future__ import annotations

import pytest

import nemo_run_k8s as run
from nemo_run_k8s import cli
from nemo_run_k8s.records import Records
from tests.faults.helpers import record


def test_empty_id_is_an_error_and_cancels_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    record("train-3f9a1c2b", state="PENDING")
    with pytest.raises(run.JobNotFoundError, match="no job id given"):
        run.Job.from_id("")
    assert cli.main(["cancel", ""]) == 2
    assert "no job id given" in capsys.readouterr().err
    assert Records().get("train-3f9a1c2b").state == "PENDING"


@pytest.mark.parametrize("pattern", ["%", "_", "train_", "%3f", "t%b", "____"])
def test_like_wildcards_match_only_themselves(pattern: str) -> None:
    record("train-3f9a1c2b", state="PENDING")
    with pytest.raises(run.JobNotFoundError, match="no job with id"):
        run.Job.from_id(pattern)


def test_wildcard_characters_in_a_prefix_match_literally() -> None:
    record("a_b-11111111")
    record("axb-22222222")
    record("100%-33333333")
    record("1000-44444444")
    assert run.Job.from_id("a_").id == "a_b-11111111"
    assert run.Job.from_id("100%").id == "100%-33333333"


def test_an_ambiguous_prefix_lists_the_candidates(capsys: pytest.CaptureFixture[str]) -> None:
    record("train-3f9a1c2b", state="RUNNING")
    record("train-77aa0011", state="RUNNING")
    record("eval-12345678", state="RUNNING")
    with pytest.raises(run.JobNotFoundError, match="ambiguous") as err:
        run.Job.from_id("train-")
    assert "train-3f9a1c2b" in str(err.value) and "train-77aa0011" in str(err.value)
    assert "eval-12345678" not in str(err.value)
    assert cli.main(["cancel", "tr"]) == 2
    assert "ambiguous" in capsys.readouterr().err
    assert {r.state for r in Records().list()} == {"RUNNING"}
    assert run.Job.from_id("train-7").id == "train-77aa0011"


def test_an_exact_id_wins_over_longer_ids_it_prefixes() -> None:
    record("train-1")
    record("train-10")
    assert run.Job.from_id("train-1").id == "train-1"
