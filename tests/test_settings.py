"""``config.settings.load_settings``: flags beat the environment beat the config file, settings are frozen, and bad
values and unknown keys are errors that name their source."""

from pathlib import Path

import pytest

from config.errors import TantraError
from config.settings import load_settings


def test_flags_beat_environment_beat_config_file(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('device = "cuda"\nverbose = true\nthreads = 3\nhome = "~/models-from-file"\n')
    environ = {"TANTRA_CONFIG": str(config), "TANTRA_DEVICE": "mps", "TANTRA_HOME": str(tmp_path / "h")}
    settings = load_settings({"device": "cpu"}, environ)
    assert settings.device == "cpu"  # flag
    assert settings.home == tmp_path / "h"  # environment over file
    assert settings.verbose is True and settings.threads == 3  # file
    assert load_settings({}, environ).device == "mps"
    assert load_settings({}, {"TANTRA_CONFIG": str(config)}).home == Path("~/models-from-file").expanduser()


def test_settings_are_frozen():
    settings = load_settings({}, {"TANTRA_CONFIG": "/nonexistent/config.toml", "TANTRA_HOME": "/tmp/x"})
    with pytest.raises(AttributeError):
        settings.device = "cuda"


@pytest.mark.parametrize(
    "environ, fragment",
    [
        ({"TANTRA_DEVICE": "tpu"}, "TANTRA_DEVICE"),
        ({"TANTRA_LOW_RESOURCE": "maybe"}, "true or false"),
        ({"TANTRA_THREADS": "-1"}, "whole number"),
    ],
)
def test_bad_values_name_their_source(environ, fragment, tmp_path):
    with pytest.raises(TantraError, match=fragment):
        load_settings({}, {"TANTRA_CONFIG": str(tmp_path / "none.toml"), **environ})


def test_unknown_key_in_config_file(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("colour = 'blue'\n")
    with pytest.raises(TantraError, match="unknown setting"):
        load_settings({}, {"TANTRA_CONFIG": str(config)})
