import pytest

from components.common.config import ConfigError, available_profiles, load_profile


@pytest.mark.parametrize("name", ["tiny", "small", "cluster"])
def test_every_shipped_profile_loads(name: str) -> None:
    prof = load_profile(name)
    assert prof.name == name
    assert len(prof.config_hash()) == 64


def test_all_profiles_in_folder_are_tested() -> None:
    assert set(available_profiles()) == {"tiny", "small", "cluster"}


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"train\.stage1\.stepz"):
        load_profile("tiny", {"train.stage1.stepz": 3})


def test_invalid_value_is_named() -> None:
    with pytest.raises(ConfigError, match=r"filter\.max_non_text_ratio"):
        load_profile("tiny", {"filter": {"max_non_text_ratio": 3}})


def test_overrides_change_hash_and_value() -> None:
    base = load_profile("tiny")
    over = load_profile("tiny", '{"train.stage1.steps": 3}')
    assert over.train.stage1.steps == 3
    assert over.config_hash() != base.config_hash()
    assert load_profile("tiny").config_hash() == base.config_hash()


def test_bad_override_json() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_profile("tiny", "{nope")


def test_unknown_profile() -> None:
    with pytest.raises(ConfigError, match="Choose one of"):
        load_profile("huge")
