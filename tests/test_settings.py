"""Configuration: the default database does not follow the working directory; typos get a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from loupe.errors import ConfigError
from loupe.settings import data_dir, load_settings


def test_the_default_database_is_in_the_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert data_dir() == tmp_path / "xdg" / "loupe"
    assert load_settings().db == f"sqlite:///{tmp_path / 'xdg' / 'loupe' / 'loupe.db'}"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert load_settings().db.startswith(f"sqlite:///{Path.home()}")
    assert load_settings(overrides={"db": "postgresql://h/db"}).db == "postgresql://h/db"


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[[models]]\nid = "a"\ncheckpoint = "x"\ninput_token_price_per_m = "1"\n', "did you mean 'input_price_per_m'?"),
        ('hots = "0.0.0.0"\n', "hots: unknown setting; did you mean 'host'?"),
        ('[engine]\ndevise = "cpu"\n', "engine.devise: unknown setting; did you mean 'device'?"),
        ('[[models]]\nid = "a"\ncheckpoint = "x"\n[models.images]\nmax_image = 3\n', "did you mean 'max_images'?"),
        ("zzz = 1\n", "known here: host, port"),
    ],
)
def test_an_unknown_setting_gets_a_suggestion(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "loupe.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match="unknown setting") as caught:
        load_settings(config)
    assert expected in caught.value.message
