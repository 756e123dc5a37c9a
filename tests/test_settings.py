"""Configuration: the default database does not follow the working directory, nor do paths in a
config file (they are relative to the file); typos get a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from loupe.billing.db import normalize_url
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


@pytest.mark.parametrize(
    "db, expected",
    [
        ('"keys.db"', "sqlite:///{folder}/keys.db"),  # a plain path is a SQLite file
        ('"sqlite:///data/keys.db"', "sqlite:///{folder}/data/keys.db"),
        ('"sqlite+pysqlite:///../keys.db?timeout=5"', "sqlite+pysqlite:///{folder}/../keys.db?timeout=5"),
        ('"sqlite:////srv/keys.db"', "sqlite:////srv/keys.db"),
        ('"/srv/keys.db"', "/srv/keys.db"),
        ('"sqlite:///:memory:"', "sqlite:///:memory:"),
        ('"postgresql://loupe@db-host/loupe"', "postgresql://loupe@db-host/loupe"),
    ],
)
def test_a_relative_database_path_in_the_file_is_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: str, expected: str
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "loupe.toml").write_text(f"db = {db}\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(Path("etc/loupe.toml"))  # a relative --config too
    assert normalize_url(settings.db) == normalize_url(expected.format(folder=folder))
    assert load_settings(Path("etc/loupe.toml"), overrides={"db": "here.db"}).db == "here.db"  # --db: the working directory's


def test_a_relative_checkpoint_in_the_file_is_relative_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "etc"
    (folder / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (folder / "loupe.toml").write_text(
        "".join(
            f'[[models]]\nid = "m{i}"\ncheckpoint = "{checkpoint}"\n'
            for i, checkpoint in enumerate(["./models/tiny", "models/tiny", "../other", "Qwen/Qwen2-VL-2B-Instruct", "/srv/m", "~/m"])
        )
    )
    monkeypatch.chdir(tmp_path / "elsewhere")
    checkpoints = [m.checkpoint for m in load_settings(folder / "loupe.toml").models]
    assert checkpoints == [
        str(folder / "models" / "tiny"),
        str(folder / "models" / "tiny"),  # found beside the file, so not a hub id
        str(folder / ".." / "other"),  # written as a path: reported there if missing
        "Qwen/Qwen2-VL-2B-Instruct",
        "/srv/m",
        "~/m",
    ]
    assert load_settings(models=("./models/tiny",)).models[0].checkpoint == "./models/tiny"  # --model: as typed


UPSTREAM = '[[models]]\nid = "gw"\ncheckpoint = "x"\nengine = "upstream"\nupstream = ["http://127.0.0.1:9/v1"]\n[models.upstream_options]\n'


def test_an_upstream_key_comes_from_the_variable_the_file_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "loupe.toml"
    config.write_text(UPSTREAM + 'api_key_env = "MY_VLLM_KEY"\n')
    monkeypatch.setenv("MY_VLLM_KEY", "sk-secret")
    options = load_settings(config).models[0].upstream_options
    assert options.api_key is not None and options.api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(options) and "sk-secret" not in str(options.model_dump())
    monkeypatch.delenv("MY_VLLM_KEY")
    with pytest.raises(ConfigError, match="'MY_VLLM_KEY', which is not set"):
        load_settings(config)


def test_an_upstream_key_written_in_the_file_or_named_but_not_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "loupe.toml"
    config.write_text(UPSTREAM + 'api_key = "sk-file"\n')
    options = load_settings(config).models[0].upstream_options
    assert options.api_key is not None and options.api_key.get_secret_value() == "sk-file"
    monkeypatch.setenv("MY_VLLM_KEY", "sk-secret")
    config.write_text(UPSTREAM + 'api_key = "sk-file"\napi_key_env = "MY_VLLM_KEY"\n')
    with pytest.raises(ConfigError, match="api_key or api_key_env, not both"):
        load_settings(config)


def test_an_upstream_ca_file_is_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "loupe.toml"
    config.write_text(UPSTREAM + 'ca_file = "certs/ca.pem"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings(config).models[0].upstream_options.ca_file == str(tmp_path / "conf" / "certs" / "ca.pem")
