"""The configuration example in the README is a file `loupe serve --config` accepts as written."""

from __future__ import annotations

import re
from pathlib import Path

from loupe.settings import load_settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_configuration_example_loads(tmp_path: Path) -> None:
    text = README.read_text()
    start = text.index("`loupe serve --config loupe.toml` reads")
    block = re.search(r"```toml\n(.*?)```", text[start:], re.S)
    assert block is not None
    config = tmp_path / "loupe.toml"
    config.write_text(block.group(1))
    settings = load_settings(config)
    assert settings.db.startswith("postgresql://") and settings.auth_cache_s == 1.0
    assert [m.id for m in settings.models] == ["qwen2-vl-2b", "smolvlm"]
    assert settings.models[0].images.max_images == 8
