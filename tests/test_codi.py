"""CODI: the distillation loss equals a naive computation on a tiny model (value and gradient), the
teacher side gets no gradient from it, and generation feeds back projected thoughts, batched as alone."""
import torch

from latent_cot.curriculum import Schedule
from latent_cot.generation import generate
from latent_cot.methods import build_method
from latent_cot.methods.codi import distillation_loss
from latent_cot.tokenizer import ANSWER_MARKER
from tests.helpers import EXAMPLES, tiny_model, tokenizer

TOK = tokenizer()


def codi_setup(seed=0):
    model = tiny_model(TOK.vocab_size, seed=seed)
    method = build_method("codi", Schedule(max_stage=2), {"n_thoughts": 3})
    torch.manual_seed(seed + 1)
    method.build(model)
    return model, method


def naive_blocks(model, embeds):
    """Every block's output (list of (1, T, C)) and the final hidden state, for one unpadded row."""
    x = embeds + model.transformer.wpe(torch.arange(embeds.shape[1]))[None]
    outputs = []
    for layer, block in enumerate(model.transformer.h):
        x = block(x, None, None, layer)
        outputs.append(x)
    return outputs, model.transformer.ln_f(x)


def marker_position(ids):
    marker = TOK.encode(ANSWER_MARKER)
    assert len(marker) == 1
    return max(i for i, token in enumerate(ids) if token == marker[0])


def naive_distillation(model, method, examples):
    """Row by row: the teacher's states (no gradient), the student's by full recomputation per thought."""
    teacher_rows, student_rows = [], []
    for example in examples:
        teacher_ids = method.render(example, TOK, method.final_layout(example)).extra["teacher"].input_ids
        with torch.no_grad():
            states, _ = naive_blocks(model, model.embed(torch.tensor([teacher_ids])))
        teacher_rows.append(torch.stack([s[0, marker_position(teacher_ids)] for s in states]))  # (L, C)
        student_ids = method.render(example, TOK, method.final_layout(example)).input_ids
        embeds = model.embed(torch.tensor([student_ids]))  # (1, T, C)
        for column in [i for i, token in enumerate(student_ids) if token == TOK.thought_id]:
            _, hidden = naive_blocks(model, embeds[:, :column])
            thought = method.project(hidden[:, -1])  # (1, C)
            embeds = torch.cat([embeds[:, :column], thought[:, None], embeds[:, column + 1:]], dim=1)
        states, _ = naive_blocks(model, embeds)
        student_rows.append(torch.stack([s[0, marker_position(student_ids)] for s in states]))
    teacher, student = torch.stack(teacher_rows, dim=1), torch.stack(student_rows, dim=1)  # (L, B, C)
    total = 0.0
    for layer in range(teacher.shape[0]):
        t, s = teacher[layer], student[layer]
        mean_abs = sum((s[b, c] - t[b, c]).abs() for b in range(t.shape[0]) for c in range(t.shape[1])) / t.numel()
        centred = t - t.mean()
        std = torch.sqrt((centred ** 2).sum() / (t.numel() - 1))
        total = total + mean_abs / std
    return total / teacher.shape[0]


def test_distillation_equals_naive_in_value_and_gradient():
    model, method = codi_setup()
    items = [method.render(e, TOK, method.final_layout(e)) for e in EXAMPLES]
    batch = method.collate(items, TOK)
    params = list(model.parameters()) + list(method.parameters())
    ours = method.parts(model, batch, TOK)["distill"]
    ours_grads = torch.autograd.grad(ours, params, allow_unused=True)
    naive = naive_distillation(model, method, EXAMPLES)
    naive_grads = torch.autograd.grad(naive, params, allow_unused=True)
    torch.testing.assert_close(ours, naive, atol=1e-5, rtol=1e-5)
    for a, b in zip(ours_grads, naive_grads):
        torch.testing.assert_close(a if a is not None else torch.zeros(()), b if b is not None else torch.zeros(()),
                                   atol=1e-5, rtol=1e-4)
    assert any(g is not None and g.abs().sum() > 0 for g in ours_grads[-6:])  # the projection learns from it


def test_teacher_gets_no_gradient_from_distillation():
    student = torch.randn(2, 3, 4, requires_grad=True)
    teacher = torch.randn(2, 3, 4, requires_grad=True)
    distillation_loss(student, teacher).backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0


def test_loss_weights_and_layout():
    model, method = codi_setup()
    batch = method.collate([method.render(e, TOK, method.final_layout(e)) for e in EXAMPLES], TOK)
    # The student reads question <bot> 3 thoughts <eot> and is supervised on the answer only.
    assert ((batch["input_ids"] == TOK.thought_id).sum(dim=1) == 3).all()
    parts = method.parts(model, batch, TOK)
    terms = method.loss(model, batch, TOK)
    expected = parts["teacher_ce"] + parts["distill"]  # default weights 1
    torch.testing.assert_close(terms.extra, expected)
    torch.testing.assert_close(terms.token_sum, parts["student_sum"])
    assert method.eval_thoughts([1, 2, 3]) == [3, 3, 3] and method.stage_at(0) == method.stage_at(9)


def test_generation_feeds_projected_thoughts_batched_as_alone():
    model, method = codi_setup(seed=3)
    batched = generate(model, TOK, EXAMPLES, method, 3, max_new_tokens=8)
    for i, example in enumerate(EXAMPLES):
        alone = generate(model, TOK, [example], method, 3, max_new_tokens=8)
        assert alone.token_ids[0] == batched.token_ids[i]
        torch.testing.assert_close(alone.thoughts[0], batched.thoughts[i], atol=1e-5, rtol=0)
    # LayerNorm ends the projection: every fed-back thought has mean 0 and unit variance.
    torch.testing.assert_close(batched.thoughts.mean(dim=-1), torch.zeros(3, 3), atol=1e-5, rtol=0)
    plain = generate(model, TOK, EXAMPLES, "codi", 3, max_new_tokens=8)  # no trained projection: other thoughts
    assert not torch.allclose(plain.thoughts, batched.thoughts)
