"""Student model: config validation, attention variants, RoPE scalings, and the MoE block's losses."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from students.errors import ConfigError
from students.model import ModelConfig, Student
from students.moe import SparseMoE
from students.rope import apply_rope, rope_cos_sin, rope_frequencies

TINY = dict(vocab_size=256, d_model=64, n_layers=2, n_heads=4, max_seq_len=64, init_std=0.1)

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.mark.parametrize("values, field", [
    (dict(d_model=64, n_heads=5), "n_heads"),
    (dict(n_heads=4, n_kv_heads=3), "n_kv_heads"),
    (dict(n_experts=4, top_k=5), "top_k"),
    (dict(rope_scaling="dynamic"), "rope_scaling"),
    (dict(rope_factor=0.5), "rope_factor"),
    (dict(n_layers=0), "n_layers"),
    (dict(capacity_factor=0.0, n_experts=2, top_k=1), "capacity_factor"),
])
def test_config_errors_name_the_field(values, field):
    with pytest.raises(ConfigError, match=field):
        ModelConfig(**{**TINY, **values})


def test_unknown_field_is_named():
    with pytest.raises(ConfigError, match="wdith"):
        ModelConfig.from_dict({"wdith": 3})


def test_causality_and_loss_falls_on_a_memorised_sequence():
    torch.manual_seed(0)
    model = Student(ModelConfig(**TINY, n_kv_heads=2))
    x = torch.randint(0, 256, (2, 32))
    y = x.clone()
    y[:, 20:] = torch.randint(0, 256, (2, 12))  # changing later tokens must not change earlier logits
    a, b = model(x).logits, model(y).logits
    assert torch.equal(a[:, :20], b[:, :20]) and not torch.allclose(a[:, 20:], b[:, 20:])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(x[:, :-1], labels=x[:, 1:]).loss
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_gqa_equals_explicitly_repeated_kv_heads():
    torch.manual_seed(0)
    gqa = Student(ModelConfig(**TINY, n_kv_heads=2)).eval()
    mha = Student(ModelConfig(**TINY)).eval()
    state = gqa.state_dict()
    for i in range(2):  # kv head j of the GQA model serves query heads 2j, 2j+1
        q, k, v = state[f"blocks.{i}.attn.qkv_proj.weight"].split([64, 32, 32])
        k, v = (w.view(2, 16, 64).repeat_interleave(2, dim=0).reshape(64, 64) for w in (k, v))
        state[f"blocks.{i}.attn.qkv_proj.weight"] = torch.cat([q, k, v])
    mha.load_state_dict(state)
    x = torch.randint(0, 256, (2, 24))
    torch.testing.assert_close(gqa(x).logits, mha(x).logits, atol=1e-5, rtol=1e-5)


def test_document_mask_isolates_documents():
    torch.manual_seed(0)
    model = Student(ModelConfig(**TINY)).eval()
    first, second = torch.randint(0, 256, (1, 10)), torch.randint(0, 256, (1, 14))
    packed = torch.cat([first, second], dim=1)
    docs = torch.tensor([[0] * 10 + [1] * 14])
    packed_logits = model(packed, document_ids=docs).logits
    # The second document alone, at the same positions (RoPE is relative, so position 0 works as well).
    alone = model(second).logits
    torch.testing.assert_close(packed_logits[:, 10:], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(model(packed).logits[:, 10:], alone, atol=1e-3)


def test_alibi_runs_causally_and_differs_from_rope():
    torch.manual_seed(0)
    model = Student(ModelConfig(**TINY, alibi=True)).eval()
    x = torch.randint(0, 256, (2, 16))
    y = x.clone(); y[:, 8:] = 0
    assert torch.equal(model(x).logits[:, :8], model(y).logits[:, :8])
    assert model.attention_mask(16, None, "cpu").shape == (1, 4, 16, 16)


def test_weight_tying_shares_one_tensor():
    tied, untied = Student(ModelConfig(**TINY)), Student(ModelConfig(**TINY, tie_embeddings=False))
    assert tied.lm_head.weight is tied.embed.weight
    assert untied.num_params() - tied.num_params() == 256 * 64


def test_linear_scaling_divides_positions():
    """With linear scaling factor s, position p rotates exactly as unscaled position p / s."""
    base, _ = rope_frequencies(16, 10000.0)
    scaled, _ = rope_frequencies(16, 10000.0, "linear", 4.0)
    x = torch.randn(1, 1, 5, 16)
    p = torch.tensor([0, 4, 8, 40, 400])
    a = apply_rope(x, *rope_cos_sin(scaled, p))
    b = apply_rope(x, *rope_cos_sin(base, p.float() / 4))
    torch.testing.assert_close(a, b)


def test_ntk_and_yarn_keep_high_frequencies_and_stretch_low_ones():
    base, _ = rope_frequencies(64, 10000.0)
    ntk, _ = rope_frequencies(64, 10000.0, "ntk", 8.0)
    yarn, attn = rope_frequencies(64, 10000.0, "yarn", 8.0, original_max_len=64)
    assert ntk[0] == base[0] and yarn[0] == base[0]                   # fastest dimension unchanged
    torch.testing.assert_close(ntk[-1], base[-1] / 8.0, rtol=1e-5, atol=0)  # NTK: the slowest stretches by s
    torch.testing.assert_close(yarn[-1], base[-1] / 8.0)               # YaRN: the slowest interpolates by s
    assert attn == pytest.approx(0.1 * torch.log(torch.tensor(8.0)).item() + 1)


def _moe(capacity=None):
    torch.manual_seed(0)
    moe = SparseMoE(32, 64, n_experts=4, top_k=2, capacity_factor=capacity)
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return moe


def test_moe_aux_loss_has_a_real_gradient():
    moe = _moe()
    x = torch.randn(64, 32)
    _, stats = moe(x)
    grad, = torch.autograd.grad(stats.aux_loss, moe.router.weight)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()
    # And it moves the router towards balance: a few SGD steps on the aux loss alone lower it.
    opt = torch.optim.SGD([moe.router.weight], lr=1.0)
    first = stats.aux_loss.item()
    for _ in range(20):
        _, s = moe(x)
        opt.zero_grad(); s.aux_loss.backward(); opt.step()
    assert float(moe(x)[1].aux_loss) < first
    z_grad, = torch.autograd.grad(moe(x)[1].z_loss, moe.router.weight)
    assert z_grad.abs().sum() > 0


def test_moe_matches_a_dense_loop_and_counts_tokens():
    moe = _moe()
    x = torch.randn(50, 32)
    out, stats = moe(x)
    logits = x @ moe.router.weight.t()
    w, e = logits.softmax(-1).topk(2, dim=-1)
    w = w / w.sum(-1, keepdim=True)
    ref = torch.zeros_like(x)
    for t in range(50):
        for j in range(2):
            k = e[t, j]
            h = F.silu(x[t] @ moe.w1[k].t()) * (x[t] @ moe.w3[k].t())
            ref[t] += w[t, j] * (h @ moe.w2[k].t())
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(stats.expert_counts, torch.bincount(e.reshape(-1), minlength=4))
    assert stats.expert_counts.sum() == 100 and stats.dropped == 0


def test_capacity_factor_drops_tokens_over_capacity():
    moe = _moe(capacity=0.5)  # capacity = ceil(0.5 * 40 * 2 / 4) = 10 assignments per expert
    x = torch.randn(40, 32)
    out, stats = moe(x)
    full = _moe()(x)[1].expert_counts
    assert torch.equal(stats.expert_counts, full.clamp(max=10))
    assert stats.dropped == int((full - 10).clamp(min=0).sum()) > 0


def test_moe_student_trains_and_reports_expert_counts():
    torch.manual_seed(0)
    model = Student(ModelConfig(**TINY, n_experts=4, top_k=2))
    x = torch.randint(0, 256, (2, 17))
    out = model(x[:, :-1], labels=x[:, 1:])
    assert out.expert_counts.shape == (2, 4) and int(out.expert_counts.sum()) == 2 * 2 * 16 * 2
    (out.loss + out.aux_loss).backward()
    assert model.blocks[0].mlp.router.weight.grad.abs().sum() > 0
    assert model.num_params(active=True) < model.num_params()
