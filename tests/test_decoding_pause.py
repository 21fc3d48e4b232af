"""The pause of the language model's decoding around a spoken reply's first audio (``core.runtime.decoding_pause``)."""

import threading

import pytest

from core.runtime.decoding_pause import decoding_paused, is_paused, wait_while_paused


def waiter() -> tuple[threading.Thread, threading.Event]:
    """A thread that waits as the decoding thread does between two tokens, and says when it went on."""
    went_on = threading.Event()
    thread = threading.Thread(target=lambda: (wait_while_paused(), went_on.set()), daemon=True)
    thread.start()
    return thread, went_on


def test_decoding_waits_until_every_pause_has_closed():
    assert not is_paused()
    _, went_on = waiter()
    assert went_on.wait(1.0)  # nothing open: no wait
    with decoding_paused():
        _, went_on = waiter()
        with decoding_paused():  # another, nested (or from another thread)
            pass
        assert is_paused() and not went_on.wait(0.1)  # the outer one is still open
    assert went_on.wait(1.0) and not is_paused()


def test_a_pause_closes_when_what_it_holds_fails():
    with pytest.raises(RuntimeError), decoding_paused():
        raise RuntimeError("the voice failed")
    assert not is_paused()


def test_the_model_makes_no_token_while_paused_and_all_of_them_after():
    torch = pytest.importorskip("torch")
    from core.language.conversation import SamplingOptions
    from core.language.language_model import generate_tokens
    from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM

    torch.manual_seed(0)
    config = SpikingBrainConfig(vocab_size=64, n_embd=64, n_layer=1, n_head=2, family="llama", block_size=64)
    model = SpikingBrainForCausalLM(config).freeze_int8().eval()
    options = SamplingOptions(temperature=0.0, max_tokens=20)
    alone = list(generate_tokens(model, [1, 2, 3], options))
    decoded, second = [], threading.Event()

    def read() -> None:
        decoded.append(next(tokens))  # sampled from the prompt's logits: the model step after it waits
        decoded.append(next(tokens))
        second.set()
        decoded.extend(tokens)

    with decoding_paused():
        tokens = generate_tokens(model, [1, 2, 3], options)
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert not second.wait(0.3) and len(decoded) == 1
    reader.join(10)
    assert decoded == alone and len(alone) == 20
