"""RAVDESS's actor split as configuration (issue 25 point 4): actor lists that do not parse, overlap, name actors the
cache lacks, or leave a part empty each end in one sentence naming the data.* fields to set. The cache holds actors
5 and 19 only, as the real files do (``write_synthetic_cache``: no media decoded)."""

from __future__ import annotations

from mke_experiments.testing.ravdess import write_synthetic_cache

RUN = ("run", "ravdess", "--data", "{ravdess_actors_cache}", "--epochs", "1", "--seeds", "0", "--device", "cpu")


def make_files(tmp):
    return {"ravdess_actors_cache": write_synthetic_cache(tmp / "ravdess_actors_cache", actors=(5, 19))}


def _config(*sets):
    return ["config", "ravdess", *[item for s in sets for item in ("--set", s)]]


def _run(*sets):
    return [*RUN, *[item for s in sets for item in ("--set", s)]]


CASES = [
    ("ravdess-actors-not-a-list", "exp", _config("data.test_actors=1-x"),
     "data.test_actors='1-x': '1-x' is not an actor number or range; write actor numbers 1–24"),
    ("ravdess-actors-reversed-range", "exp", _config("data.val_actors=8-5"),
     "data.val_actors='8-5': '8-5' is not a range of actors within 1–24 (low to high)"),
    ("ravdess-actors-25", "exp", _config("data.dl_actors=25"), "'25' is not a range of actors within 1–24"),
    ("ravdess-actors-test-val-overlap", "exp", _config("data.val_actors=3-6"),
     "actors 3, 4 are in both data.test_actors='1-4' and data.val_actors='3-6'"),
    ("ravdess-actors-dl-in-test", "exp", _config("data.dl_actors=2,9"),
     "actor 2 is in both data.test_actors='1-4' and data.dl_actors='2,9'"),
    ("ravdess-actors-empty-test", "exp", _config("data.test_actors="), "data.test_actors is empty"),
    ("ravdess-actors-with-random-split", "exp", _config("data.split=random", "data.test_actors=19"),
     "data.test_actors is read only with data.split=actor, not data.split=random"),
    ("ravdess-actors-fraction-unread", "exp", _config("data.labeled_fraction=0.5"),
     "data.labeled_fraction is read only with data.labeled_split=clip or data.split=random"),
    ("ravdess-actors-dl-and-count", "exp", _config("data.dl_actors=9", "data.labeled_actors=2"),
     "data.dl_actors='9' and data.labeled_actors=2 both choose D_l's actors: set only one"),
    ("ravdess-actors-default-test-absent", "exp", _run(),
     "holds actors 5, 19 and none of the test actors 1, 2, 3, 4: set data.test_actors to some of the actors it holds"),
    ("ravdess-actors-named-absent", "exp", _run("data.test_actors=3,19"),
     "data.test_actors='3,19' names actor 3, not in the cache in"),
    ("ravdess-actors-none-for-du", "exp", _run("data.test_actors=19", "data.val_actors="),
     "data.labeled_actors=4 leaves none for D_u: name fewer or other D_l actors with data.dl_actors"),
    ("ravdess-actors-dl-takes-every-train-actor", "exp",
     _run("data.test_actors=19", "data.val_actors=", "data.dl_actors=5"),
     "data.dl_actors='5' leaves none for D_u"),
]
