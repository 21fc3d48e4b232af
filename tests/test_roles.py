"""The shape around the models, with fake backends (tests/fakes.py): chain order, fall-through, --low-resource,
--device, threads and loading once. Fast: no weights are read."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from config.errors import BadInput, ModelUnavailable
from config.model_config import MODEL_CONFIG
from config.settings import Settings
from core.model_loader import ModelLoader
from tests.fakes import (
    FakeClassifier,
    FakeRemoteVision,
    FakeTokenizer,
    FakeVoice,
    FakeWhisper,
    broken,
    failing,
    fake_language_model,
    named,
)

ROOT = Path(__file__).resolve().parents[1]
VOICES = {f"voice:{name}": named(FakeVoice, name) for name in MODEL_CONFIG.voice.chain.entries}
ENGINES = {f"hearing:{name}": named(FakeWhisper, name) for name in MODEL_CONFIG.hearing.engines.entries}
CLASSIFIERS = {f"vision:{name}": named(FakeClassifier, name) for name in MODEL_CONFIG.vision.engines.entries}


def loader_with(tmp_path, backends: dict, **settings) -> tuple[ModelLoader, list[str]]:
    said: list[str] = []
    loader = ModelLoader(MODEL_CONFIG, Settings(home=tmp_path, **settings), said.append, backends)
    return loader, said


def test_each_chain_takes_its_first_entry(tmp_path):
    loader, said = loader_with(tmp_path, {**VOICES, **ENGINES, **CLASSIFIERS})
    assert loader.load_speaker().name == "coqui"
    assert loader.load_whisper().name == "faster-whisper"
    assert loader.load_vision().engine == "onnxruntime"
    assert said == []


def test_low_resource_moves_every_role_to_its_lightest_choice(tmp_path):
    lm = {f"language:{e}": named(fake_language_model, e) for e in MODEL_CONFIG.language.chain.entries}
    loader, _ = loader_with(tmp_path, {**VOICES, **ENGINES, **lm}, low_resource=True)
    assert loader.load_speaker().name == "espeak-ng"
    assert loader.load_spikingbrain()["name"] == "distilgpt2"
    assert (loader.beam_size, loader.reads_text, loader.image_size) == (1, False, 160)
    normal, _ = loader_with(tmp_path, {})
    assert (normal.beam_size, normal.reads_text, normal.image_size) == (5, True, 224)


def test_a_failing_backend_gives_way_with_one_line_naming_the_next(tmp_path):
    loader, said = loader_with(tmp_path, {**VOICES, "voice:coqui": failing("Coqui TTS is not installed")})
    assert loader.load_speaker().name == "piper"
    assert said == ["coqui cannot be used (Coqui TTS is not installed); trying piper"]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ModuleNotFoundError("No module named 'ctranslate2'", name="ctranslate2"), "ctranslate2 is not installed"),
        (ImportError("cannot import name 'WhisperModel'", name="faster_whisper"), "cannot import name 'WhisperModel'"),
        (ValueError("Expecting value: line 1 column 1"), "Expecting value: line 1 column 1"),
        (RuntimeError("Unable to open file 'model.bin' in model"), "Unable to open file 'model.bin' in model"),
        (OSError("corrupt header"), "corrupt header"),
    ],
)
def test_libraries_missing_and_damaged_files_fall_through_too(tmp_path, error, reason):
    loader, said = loader_with(tmp_path, {**ENGINES, "hearing:faster-whisper": broken(error)})
    assert loader.load_whisper().name == "openai-whisper"
    assert said == [f"faster-whisper cannot be used ({reason}); trying openai-whisper"]


def test_bad_input_stops_the_walk(tmp_path):
    tried = []
    backends = {**VOICES, "voice:coqui": broken(BadInput("no such voice")), "voice:piper": lambda: tried.append(1)}
    loader, said = loader_with(tmp_path, backends)
    with pytest.raises(BadInput, match="no such voice"):
        loader.load_speaker()
    assert tried == [] and said == []


def test_when_all_fail_the_error_lists_each_and_no_line_promises_a_next(tmp_path):
    backends = {f"voice:{name}": failing(f"{name} is broken") for name in MODEL_CONFIG.voice.chain.entries}
    loader, said = loader_with(tmp_path, backends)
    with pytest.raises(ModelUnavailable) as failure:
        loader.load_speaker()
    assert str(failure.value) == (
        "no speech backend can run here: coqui: coqui is broken; piper: piper is broken; espeak-ng: espeak-ng is broken"
    )
    assert said == ["coqui cannot be used (coqui is broken); trying piper",
                    "piper cannot be used (piper is broken); trying espeak-ng"]  # fmt: skip


def test_a_pinned_backend_says_its_own_error(tmp_path):
    loader, said = loader_with(tmp_path, {**VOICES, "voice:piper": failing("the voice file is corrupt")})
    with pytest.raises(ModelUnavailable, match="^the voice file is corrupt$"):
        loader.load_speaker(backend="piper")
    assert said == []


def test_the_language_model_chain_and_unpulled_hub_models(tmp_path):
    backends = {"language:spikingbrain": failing("no INT8 kernel"),
                "language:spikingbrain-nospike": named(fake_language_model, "plain")}  # fmt: skip
    loader, said = loader_with(tmp_path, backends)
    assert loader.load_spikingbrain()["name"] == "plain"
    assert said == ["spikingbrain-smollm2-135m (spiking) cannot be used (no INT8 kernel); "
                    "trying spikingbrain-smollm2-135m (not spiking)"]  # fmt: skip
    loader, said = loader_with(tmp_path, {"language:spikingbrain": failing("no INT8 kernel"),
                                          "language:spikingbrain-nospike": failing("no weights")})  # fmt: skip
    with pytest.raises(ModelUnavailable) as failure:
        loader.load_spikingbrain()
    assert str(failure.value) == (
        "no language model can run here: spikingbrain-smollm2-135m (spiking): no INT8 kernel; "
        "spikingbrain-smollm2-135m (not spiking): no weights; gpt2 (spiking): not pulled (`tantra models pull gpt2`); "
        "distilgpt2 (spiking): not pulled (`tantra models pull distilgpt2`)"
    )  # in the chain's order
    assert len(said) == 1  # nothing left to try after the second: no line promises one


def test_weights_found_missing_are_not_looked_for_again(tmp_path):
    """No SmolLM2 and nothing to pull it from: the spiking entry says so, the plain one (same weights) is passed
    over without a second pull, and no line promises it."""
    loader, said = loader_with(tmp_path, {}, auto_pull=False)
    with pytest.raises(ModelUnavailable) as failure:
        loader.load_spikingbrain()
    message = str(failure.value)
    assert "spikingbrain-smollm2-135m (spiking): spikingbrain-smollm2-135m is not in the model store" in message
    plain = "spikingbrain-smollm2-135m (not spiking): its weights are missing (see spikingbrain-smollm2-135m (spiking))"
    assert plain in message
    assert said == []


def test_a_model_that_cannot_be_pulled_is_tried_once_for_all_its_engines(tmp_path):
    loader, said = loader_with(tmp_path, {}, auto_pull=False)
    with pytest.raises(ModelUnavailable, match="^whisper-tiny.en is not in the model store"):
        loader.load_whisper()
    assert said == []  # no engine gave way to another: none could have read a model that is not there


def test_a_gpu_that_is_there_puts_torch_first_for_vision(tmp_path, monkeypatch):
    monkeypatch.setattr("core.runtime.placement.gpus_of",
                        lambda library: frozenset({"cuda"} if library == "torch" else ()))  # fmt: skip
    loader, said = loader_with(tmp_path, CLASSIFIERS, device="cuda")
    assert loader.load_vision().engine == "torch"
    assert loader.placement.device("torch") == "cuda" and loader.placement.onnx_providers() == ["CPUExecutionProvider"]
    assert loader.placement.device("onnxruntime") == "cpu"
    assert said == ["onnxruntime cannot use --device cuda here; running on the CPU"]
    loader, _ = loader_with(tmp_path, CLASSIFIERS, device="auto")
    assert loader.load_vision().engine == "onnxruntime"  # auto: the faster CPU engine stays first


def test_a_gpu_that_is_not_there_is_said_once_and_the_cpu_order_stays(tmp_path, monkeypatch):
    monkeypatch.setattr("core.runtime.placement.gpus_of", lambda library: frozenset())
    loader, said = loader_with(tmp_path, CLASSIFIERS, device="mps")
    assert loader.load_vision().engine == "onnxruntime"
    assert [loader.placement.device("torch") for _ in range(3)] == ["cpu"] * 3
    assert said == ["torch cannot use --device mps here; running on the CPU"]


def test_one_device_rule_for_every_library(tmp_path, monkeypatch):
    gpus = {"torch": {"cuda", "mps"}, "ctranslate2": {"cuda"}, "onnxruntime": {"cuda"}}
    monkeypatch.setattr("core.runtime.placement.gpus_of", lambda library: frozenset(gpus[library]))
    auto, _ = loader_with(tmp_path, {})
    assert [auto.placement.device(lib) for lib in gpus] == ["cuda", "cuda", "cuda"]
    assert auto.placement.onnx_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    cpu, _ = loader_with(tmp_path, {}, device="cpu")
    assert [cpu.placement.device(lib) for lib in gpus] == ["cpu", "cpu", "cpu"]
    mps, said = loader_with(tmp_path, {}, device="mps")
    assert [mps.placement.device(lib) for lib in gpus] == ["mps", "cpu", "cpu"]
    assert said == ["ctranslate2 cannot use --device mps here; running on the CPU"]  # one line per command
    assert loader_with(tmp_path, {}, threads=3)[0].placement.threads == 3


def test_each_model_loads_once_even_when_threads_ask_together(tmp_path):
    made = []
    started = threading.Barrier(8)

    def slow_voice():
        made.append(1)
        return FakeVoice("piper")

    loader, _ = loader_with(tmp_path, {"voice:coqui": failing(), "voice:piper": slow_voice})
    voices = []

    def ask():
        started.wait()
        voices.append(loader.load_speaker())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and len({id(voice) for voice in voices}) == 1


def test_the_remote_vision_model_is_an_entry_of_the_vision_chain(tmp_path):
    from PIL import Image

    from core.vision.describer import ImageDescriber

    image = Image.new("RGB", (64, 48), (200, 10, 10))
    remote = {**CLASSIFIERS, "vision:long-vita-remote": FakeRemoteVision}
    describer = ImageDescriber(loader_with(tmp_path, remote)[0], ocr=False)
    facts = describer.facts((image, _info()))
    assert facts["labels"][0]["name"] == "red" and describer.answer(image, facts) == "A 64x48 image."

    class Down(FakeRemoteVision):
        def ask(self, image, question):
            raise ModelUnavailable("the vision server cannot be reached")

    loader, said = loader_with(tmp_path, {**CLASSIFIERS, "vision:long-vita-remote": Down})
    assert ImageDescriber(loader, ocr=False).answer(image, facts).startswith("Looks like red")
    assert said == ["long-vita-remote cannot be used (the vision server cannot be reached); "
                    "trying the local classifier"]  # fmt: skip
    loader, said = loader_with(tmp_path, {**CLASSIFIERS, "vision:long-vita-remote": lambda: None})
    assert ImageDescriber(loader, ocr=False).answer(image, facts).startswith("Looks like red") and said == []


def _info():
    from core.vision.image_io import ImageInfo

    return ImageInfo("red.png", "PNG", 64, 48, 1, "RGB")


def test_a_fake_language_model_streams_through_the_real_chat_session():
    from core.language.chat_session import ChatSession
    from core.language.conversation import SamplingOptions

    session = ChatSession.of(fake_language_model(), SamplingOptions(seed=1))
    pieces = list(session.ask("hello there"))
    assert "".join(pieces) == "You said: hello there." and len(pieces) > 5  # streamed, not at once
    assert session.last.completion_tokens == len("You said: hello there.")


def test_a_chat_with_the_fake_model_never_imports_torch():
    script = ("import sys; from tests.fakes import fake_language_model; "
              "from core.language.chat_session import ChatSession; from core.language.conversation import "
              "SamplingOptions; chat = ChatSession.of(fake_language_model(), SamplingOptions()); "
              "assert ''.join(chat.ask('hi')) == 'You said: hi.'; assert chat.command('/stats'); "
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:1])")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def tiny_local_model():
    """A real SpikingBrain network (random, 1 layer) whose tokens decode as letters: never an end of turn."""
    import torch

    from core.language.chat_model import LocalChatModel
    from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM

    class Letters(FakeTokenizer):
        stop_token_ids: set[int] = set()

        def encode(self, text: str) -> list[int]:
            return [ord(character) % 64 for character in text]

        def decode(self, ids: list[int]) -> str:
            return "".join(chr(65 + i % 26) for i in ids)

    torch.manual_seed(0)
    config = SpikingBrainConfig(vocab_size=64, n_embd=32, n_layer=1, n_head=2, family="llama", block_size=4096)
    return LocalChatModel(SpikingBrainForCausalLM(config).eval(), Letters(), "tiny")


def test_decoding_has_one_torch_thread_and_leaves_everyone_elses_alone():
    import torch

    from core.language.chat_session import ChatSession
    from core.language.conversation import SamplingOptions
    from core.language.language_model import _decoding_thread

    main_threads = torch.get_num_threads()
    session = ChatSession(tiny_local_model(), SamplingOptions(max_tokens=5))
    assert len("".join(session.ask("hi"))) == 5 and session.last.completion_tokens == 5
    assert torch.get_num_threads() == main_threads  # decoding never touches the caller's threads
    assert _decoding_thread().submit(torch.get_num_threads).result() == 1
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))  # a role started afterwards
    thread.start()
    thread.join()
    assert seen == [main_threads] and torch.get_num_threads() == main_threads


def test_a_reply_stopped_early_frees_the_decoder_for_the_next():
    from core.language.chat_session import ChatSession
    from core.language.conversation import SamplingOptions

    model = tiny_local_model()
    session = ChatSession(model, SamplingOptions(max_tokens=2000))
    reply = session.ask("go on")
    first = next(reply)
    reply.close()  # the reader stops listening (Ctrl-C, a barge-in)
    assert session.last.interrupted and session.conversation.messages[-1]["content"] == first
    again = ChatSession(model, SamplingOptions(max_tokens=3))
    assert len("".join(again.ask("next"))) == 3  # the decoding thread is free: the next reply is not stuck


def test_the_spec_names_on_the_loader(tmp_path):
    from core.vision.vision_embedding import ImageEmbedding

    loader, _ = loader_with(tmp_path, {**CLASSIFIERS, "voice:coqui": named(FakeVoice, "coqui")})
    assert loader.load_coqui_tts().name == "coqui"
    encoder = loader.get_vision_encoder()
    assert isinstance(encoder, ImageEmbedding)
    from PIL import Image

    vector = encoder(Image.new("RGB", (32, 32), (0, 0, 255)))
    assert vector.shape == (MODEL_CONFIG.vision.embed_dim,) and abs(float(vector.norm()) - 1) < 1e-5


def test_loading_images_sets_pillows_limit_once(monkeypatch, tmp_path):
    from PIL import Image

    from core.vision.image_io import MAX_PIXELS, load_image

    path = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(path)
    load_image(path)
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 123)  # another part of the process set its own
    load_image(path)
    assert Image.MAX_IMAGE_PIXELS == 123  # not assigned again per image


def test_set_spiking_false_runs_the_same_int8_weights_without_spike_coding():
    import torch

    from core.models.spike_coding import dequantize_int8
    from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM

    torch.manual_seed(0)
    config = SpikingBrainConfig(vocab_size=300, n_embd=64, n_layer=2, n_head=4, n_kv_head=2, family="llama",
                                intermediate_size=320, block_size=64)  # fmt: skip
    trainable = SpikingBrainForCausalLM(config).eval()
    int8 = SpikingBrainForCausalLM.from_state_dict(config, dict(trainable.state_dict())).freeze_int8()
    # The plain network on exactly the INT8 weights: what spiking off must compute.
    for layer in trainable.spiking_layers():
        from core.models.spike_coding import quantize_int8

        q, scale = quantize_int8(layer.weight.detach(), layer.group or layer.in_features)
        layer.weight.data = dequantize_int8(q, scale, layer.in_features)
    trainable.set_spiking(False)
    int8.set_spiking(False)
    ids = torch.randint(0, 300, (1, 24))
    with torch.no_grad():
        plain = int8(ids).logits  # 24 tokens: the batched path
        step = int8(ids[:, :1]).logits  # one token: the kernel path
        reference = trainable(ids).logits
    head_error = 0.02 * reference.abs().max()  # the INT8 embedding and head are the same in both modes
    assert (plain - reference).abs().max() < head_error and (step - reference[:, :1]).abs().max() < head_error
    int8.set_spiking(True)
    with torch.no_grad():
        spiking = int8(ids).logits
    assert not torch.allclose(spiking, plain)  # spike coding is really switched, both ways
    assert np.isfinite(spiking.numpy()).all()


def test_the_loader_puts_numpys_blas_on_one_thread():
    """Its threads spin after each product, on the cores the models need (``placement._numpy_blas_on_one_thread``)."""
    script = (
        "import numpy\n"
        "from threadpoolctl import ThreadpoolController\n"
        "def threads():\n"
        "    numpys = ThreadpoolController().select(prefix='libscipy_openblas')\n"
        "    return [library.num_threads for library in numpys.lib_controllers]\n"
        "before = threads()\n"
        "from config.settings import load_settings\n"
        "from config.model_config import MODEL_CONFIG\n"
        "from core.model_loader import ModelLoader\n"
        "ModelLoader(MODEL_CONFIG, load_settings({}))\n"
        "print(before, threads())\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}  # what it would take by itself on two cores
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if done.stdout.startswith("[]"):
        pytest.skip("this numpy has no OpenBLAS of its own (Accelerate on macOS, MKL in conda)")
    assert done.stdout.split() == ["[2]", "[1]"], done.stdout + done.stderr
