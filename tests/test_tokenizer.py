import pytest

from latent_cot.curriculum import Layout
from latent_cot.data.loaders import load_examples
from latent_cot.data.render import render, training_text
from latent_cot.tokenizer import Tokenizer
from tests.helpers import EXAMPLES, gpt2_like_tokenizer_dir


def test_word_level_round_trip_on_real_prosqa(real_file, tmp_path):
    examples = load_examples(real_file("prosqa/prosqa_valid.json"))
    tok = Tokenizer.train(training_text(e) for e in examples)
    for example in examples:
        text = training_text(example)
        assert tok.decode(tok.encode(text)) == text
    # every concept and person name, and the final ".", is one token
    for name in examples[0].extra["idx_to_symbol"]:
        assert len(tok.encode(name)) == 1
    assert tok.encode("terpus.")[1] == tok.token_to_id(".")
    tok.save(tmp_path / "tokenizer.json")
    again = Tokenizer.load(tmp_path / "tokenizer.json")
    assert again.encode(training_text(examples[5])) == tok.encode(training_text(examples[5]))
    assert (again.pad_id, again.eos_id, again.bot_id, again.eot_id, again.thought_id, again.pause_id) == \
        (tok.pad_id, tok.eos_id, tok.bot_id, tok.eot_id, tok.thought_id, tok.pause_id)


def test_word_level_digits_and_canonical_spacing(real_file):
    examples = load_examples(real_file("gsm8k/valid.txt"))[:50]
    tok = Tokenizer.train(training_text(e) for e in examples)
    assert [tok.id_to_token(i) for i in tok.encode("<<12*3=36>>")] == list("<<12*3=36>>")
    assert tok.decode(tok.encode("$1,000 each.")) == "$ 1, 0 0 0 each."
    for example in examples:  # canonical spacing is a fixed point
        canonical = tok.canonical(training_text(example))
        assert tok.canonical(canonical) == canonical
    assert len(tok.encode("###")) == 1


def test_special_tokens_are_single_tokens_and_skipped_in_decoding():
    tok = Tokenizer.train(training_text(e) for e in EXAMPLES)
    ids = tok.encode("Tom<bot><thought><thought><eot>")
    assert ids[1:] == [tok.bot_id, tok.thought_id, tok.thought_id, tok.eot_id]
    assert tok.decode(ids) == "Tom"
    assert tok.decode(ids, skip_special=False) == "Tom <bot> <thought> <thought> <eot>"


def test_gpt2_tokenizer_from_local_dir_adds_specials_and_round_trips_exactly(tmp_path):
    tok = Tokenizer.from_gpt2_dir(gpt2_like_tokenizer_dir(tmp_path))
    assert tok.eos_id == tok.token_to_id("<|endoftext|>")
    assert len({tok.pad_id, tok.bot_id, tok.eot_id, tok.thought_id, tok.pause_id, tok.eos_id}) == 6
    text = "Hannah has $1,000.\n<<1.5*2=3>>  ### 10 "
    assert tok.decode(tok.encode(text)) == text
    rendered = render(EXAMPLES[1], tok, "coconut", Layout(1, 2, True))
    assert rendered.input_ids.count(tok.thought_id) == 2


def test_gpt2_dir_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        Tokenizer.from_gpt2_dir(tmp_path)
    Tokenizer.train(["a b"]).save(tmp_path / "tokenizer.json")
    with pytest.raises(ValueError, match="not a GPT-2 tokenizer"):
        Tokenizer.from_gpt2_dir(tmp_path)
