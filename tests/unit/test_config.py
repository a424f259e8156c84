"""Settings: every source merges into one typed tree; bad values fall back with a message."""

from pathlib import Path

from paramlens import config
from paramlens.config import Settings


def test_pyproject_then_editor_settings(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.paramlens]\ntimeout = 3\nmemory-mb = 512\npython = "/opt/py/bin/python"\n'
        '[tool.paramlens.models]\nNet = "Net(3)"\n'
    )
    (tmp_path / "sub").mkdir()
    settings, problems = config.from_pyproject(tmp_path / "sub" / "m.py")
    assert problems == []
    assert (settings.timeout, settings.memory_mb, dict(settings.models)) == (
        3.0,
        512,
        {"Net": "Net(3)"},
    )
    settings, problems = config.merge(
        settings, {"layerLenses": False, "timeout": 7, "python": ""}, "editor"
    )
    assert (settings.layer_lenses, settings.timeout, settings.memory_mb) == (False, 7.0, 512)
    assert settings.python == "/opt/py/bin/python"  # the editor's empty setting means unset


def test_bad_values_keep_the_default_and_say_so() -> None:
    settings, problems = config.merge(
        Settings(), {"timeout": "soon", "device": "gpu", "memoryMb": -1, "colour": "red"}, "editor"
    )
    assert settings == Settings()
    assert len(problems) == 4
    assert any("device must be one of meta, cpu" in p for p in problems)
    assert any("unknown setting 'colour'" in p for p in problems)


def test_broken_pyproject_is_a_message_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.paramlens\n")
    settings, problems = config.from_pyproject(tmp_path)
    assert settings == Settings()
    assert len(problems) == 1 and "pyproject.toml" in problems[0]


def test_a_relative_python_is_relative_to_its_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.paramlens]\npython = ".venv/bin/python"\n')
    settings, _ = config.from_pyproject(tmp_path / "pkg" / "m.py")
    assert settings.python == str(tmp_path / ".venv/bin/python")
    (tmp_path / "pyproject.toml").write_text('[tool.paramlens]\npython = "python3"\n')
    assert config.from_pyproject(tmp_path)[0].python == "python3"  # a name on PATH stays one


def test_key_line_finds_a_class_key_however_the_table_is_written(tmp_path: Path) -> None:
    """Where a settings problem of a [tool.paramlens.models] or .inputs key is shown."""
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[project]\nname = "x"\nMLP = "not ours"\n\n'
        "[tool.paramlens]\n"
        'inputs = { "a.py::B" = "x", MLP = "torch.randn(1, 8)" }\n'
        'models.Enc = "Enc(3)"\n\n'
        "[ tool.paramlens.models ]   # a comment\n"
        '"MLP" = "MLP(4)"\n'
        "'Other' = \"Other()\"\n"
    )
    assert config.key_line(path, "models", "MLP") == 10
    assert config.key_line(path, "models", "Other") == 11
    assert config.key_line(path, "inputs", "MLP") == 6
    assert config.key_line(path, "models", "Enc") == 7
    assert config.key_line(path, "models", "B") is None
    assert config.key_line(tmp_path / "missing.toml", "models", "MLP") is None
