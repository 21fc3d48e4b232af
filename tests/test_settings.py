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


def test_each_role_has_one_name_and_the_old_names_still_work(tmp_path):
    """language, hearing, vision, voice: as the model config, the server and ``core/`` name them. The settings'
    names before that (lm_, stt_, vlm_, tts_) are read still, from the environment and the config file alike."""
    config = tmp_path / "config.toml"
    config.write_text('stt_url = "http://old:1/v1"\ntts_voice = "nova"\nvoice_name = "echo"\n')
    settings = load_settings(environ={"TANTRA_CONFIG": str(config), "TANTRA_LM_URL": "http://old:2/v1",
                                      "TANTRA_VISION_URL": "http://new:3/v1", "TANTRA_VLM_URL": "http://old:3/v1"})
    assert settings.hearing_url == "http://old:1/v1" and settings.language_url == "http://old:2/v1"
    assert settings.vision_url == "http://new:3/v1" and settings.voice_name == "echo"  # the new name wins
    from config.model_config import MODEL_CONFIG, STORE_MODELS

    assert MODEL_CONFIG.spikingbrain is MODEL_CONFIG.language and MODEL_CONFIG.tts is MODEL_CONFIG.voice
    assert {m.role for m in STORE_MODELS} == {"language", "hearing", "vision", "voice", "memory", "talk"}
