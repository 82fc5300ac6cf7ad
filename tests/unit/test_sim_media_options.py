"""Scene and answer-policy options of the simulated homes (``--scene``, ``--answer``)."""

from __future__ import annotations

import pytest

from homeside.peer import AnswerPolicy, PolicyMode
from simulators.homes import SceneChoice, home_of, parse_scenes, scene_of
from simulators.scenes import SceneKind


def test_scenes_for_every_home_and_per_home() -> None:
    every, per_home = parse_scenes(["fallen:ir", "2=walking", "3=covered"])
    assert every == SceneChoice(SceneKind.FALLEN, ir=True)
    assert per_home == {2: SceneChoice(SceneKind.WALKING), 3: SceneChoice(SceneKind.COVERED)}
    assert scene_of(2, every, per_home).kind is SceneKind.WALKING
    assert scene_of(7, every, per_home) == every
    assert scene_of(1).kind is SceneKind.ASLEEP  # the default rotation
    assert scene_of(4).kind is SceneKind.WALKING


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["dancing"], "unknown scene"),
        (["x=asleep"], "home number"),
        (["asleep:uv"], ":ir"),
    ],
)
def test_bad_scene_options_name_the_problem(items: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_scenes(items)


def test_scene_is_seeded_per_device_and_home_numbers_parse() -> None:
    a = SceneChoice(SceneKind.ASLEEP).scene("cam-0001")
    b = SceneChoice(SceneKind.ASLEEP).scene("cam-0002")
    assert a.seed != b.seed
    assert home_of("cam-0012") == 12
    assert home_of("camera-x") == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("always", AnswerPolicy(PolicyMode.ALWAYS)),
        ("never", AnswerPolicy(PolicyMode.NEVER)),
        ("manual", AnswerPolicy(PolicyMode.MANUAL)),
        ("after:2.5", AnswerPolicy(PolicyMode.AFTER, 2.5)),
    ],
)
def test_answer_policies(text: str, expected: AnswerPolicy) -> None:
    assert AnswerPolicy.parse(text) == expected


@pytest.mark.parametrize("text", ["sometimes", "after", "after:-1", "after:9999", "always:3"])
def test_bad_answer_policies_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        AnswerPolicy.parse(text)
