"""Golden rendered strings for every mode, and the label mask DESIGN.md fixes."""
import pytest

from latent_cot.curriculum import Layout, Schedule
from latent_cot.data.render import IGNORE, answer_of, normalize_answer, render
from tests.helpers import EXAMPLES, tokenizer

TOK = tokenizer()
EX = EXAMPLES[1]  # three steps
Q = "Ann is a zorpus. Every zorpus is a brimpus. Every brimpus is a gorpus. Is Ann a gorpus or rempus?"
S1, S2, S3 = "Ann is a zorpus.", "Every zorpus is a brimpus.", "Every brimpus is a gorpus."
A = "### Ann is a gorpus."

GOLDEN = {  # (mode, stage) -> (full text, supervised text); schedule max_stage=2, c=2, pad_to_max
    ("cot", 3): (f"{Q}\n{S1}\n{S2}\n{S3}\n{A}<eos>", f"{S1}\n{S2}\n{S3}\n{A}<eos>"),
    ("no_cot", 0): (f"{Q}\n{A}<eos>", f"{A}<eos>"),
    ("coconut", 0): (f"{Q}\n<bot><eot>{S1}\n{S2}\n{S3}\n{A}<eos>", f"{S1}\n{S2}\n{S3}\n{A}<eos>"),
    ("coconut", 1): (f"{Q}\n<bot>" + "<thought>" * 2 + f"<eot>{S2}\n{S3}\n{A}<eos>", f"{S2}\n{S3}\n{A}<eos>"),
    ("coconut", 3): (f"{Q}\n<bot>" + "<thought>" * 4 + f"<eot>{A}<eos>", f"{A}<eos>"),
    ("pause", 2): (f"{Q}\n<bot>" + "<pause>" * 4 + f"<eot>{S3}\n{A}<eos>", f"{S3}\n{A}<eos>"),
    ("soft", 1): (f"{Q}\n<bot>" + "<thought>" * 2 + f"<eot>{S2}\n{S3}\n{A}<eos>", f"{S2}\n{S3}\n{A}<eos>"),
    ("no_thought", 1): (f"{Q}\n{S2}\n{S3}\n{A}<eos>", f"{S2}\n{S3}\n{A}<eos>"),
    ("no_thought", 3): (f"{Q}\n{A}<eos>", f"{A}<eos>"),
}


def plain(ids):
    """Decode keeping specials, joined without the spaces the decoder puts around them."""
    text = TOK.decode(ids, skip_special=False)
    for special in ("<bot>", "<eot>", "<thought>", "<pause>", "<eos>"):
        text = text.replace(f" {special}", special).replace(f"{special} ", special)
    return text


@pytest.mark.parametrize("mode,stage", list(GOLDEN))
def test_golden_rendering(mode, stage):
    schedule = Schedule(max_stage=2, thoughts_per_step=2, pad_to_max=True)
    rendered = render(EX, TOK, mode, schedule.layout(mode, len(EX.steps), stage))
    full, supervised = GOLDEN[mode, stage]
    assert plain(rendered.input_ids) == full
    assert plain([t for t in rendered.labels if t != IGNORE]) == supervised
    first = rendered.labels.index(next(t for t in rendered.labels if t != IGNORE))
    assert all(t == IGNORE for t in rendered.labels[:first])  # question, <bot>, slots, <eot> unsupervised
    assert all(t != IGNORE for t in rendered.labels[first:])  # everything after is supervised


def test_slots_in_a_mode_without_them_are_rejected():
    with pytest.raises(ValueError, match="no thought slots"):
        render(EX, TOK, "cot", Layout(0, 2, markers=False))


def test_answer_extraction_and_normalisation():
    assert answer_of("step\n### Tom is a lempus.") == "Tom is a lempus."
    assert answer_of("no marker") == ""
    assert normalize_answer(" 1,234,567 ") == normalize_answer("1234567")
    assert normalize_answer("1,5") != normalize_answer("15")  # only thousands commas go
