"""distill / decoder / recon / eval / baseline / pseudo-labels on a tiny random teacher and espeak speech."""

from __future__ import annotations

import pytest
import torch

from tortuner.errors import TortunerError
from tortuner.models.checkpoints import load_dvae, load_tortoise_model
from tortuner.recover.baseline import BaselineConfig, matched_agreement, run_baseline
from tortuner.recover.data import load_real
from tortuner.recover.decoder import DecoderConfig, run_decoder
from tortuner.recover.distill import DistillConfig, run_distill
from tortuner.recover.evaluate import EvalConfig, run_eval, score_tokenizer
from tortuner.recover.pseudo import pseudo_pairs
from tortuner.recover.recon import ReconConfig, run_recon

SMALL = dict(codebook_dim=8, hidden_dim=32, num_resnet_blocks=1)


@pytest.mark.slow
def test_pipeline(rec_env, tmp_path):
    env = rec_env
    clips = load_real(env["speech"])
    teacher = load_dvae(env["teacher"])
    fresh = score_tokenizer(load_dvae(env["teacher"]).__class__(teacher.cfg), clips, teacher)["agreement_top1"]
    s = run_distill(DistillConfig(synth=str(env["synth"]), out=str(tmp_path / "d.pth"), models=str(env["models"]),
                                  steps=200, finetune_steps=20, clvp_top=0.5, batch=8, crop_tokens=16, **SMALL))
    assert s["pairs"] == 6 and s["filtered_pairs"] == 3
    distilled = load_dvae(tmp_path / "d.pth")
    held = score_tokenizer(distilled, clips[6:], teacher)
    assert held["agreement_top1"] > max(0.5, fresh + 0.2), (held, fresh)

    run_decoder(DecoderConfig(synth=str(env["synth"]), dvae=str(tmp_path / "d.pth"), out=str(tmp_path / "dec.pth"),
                              steps=60, batch=8))
    dec = load_dvae(tmp_path / "dec.pth")
    assert torch.equal(dec.codebook.embed, distilled.codebook.embed)
    assert all(torch.equal(dec.tokenize(c.mel[None]), distilled.tokenize(c.mel[None])) for c in clips)
    assert score_tokenizer(dec, clips)["recon_l1"] < score_tokenizer(distilled, clips)["recon_l1"]

    r = run_recon(ReconConfig(speech=str(env["speech"]), synth=str(env["synth"]), dvae=str(tmp_path / "dec.pth"),
                              out=str(tmp_path / "r.pth"), steps=30, batch=8))
    rec = load_dvae(tmp_path / "r.pth")
    assert torch.equal(rec.codebook.embed, dec.codebook.embed)  # frozen codebook: tokens keep their meaning
    assert 0 <= r["drift"] <= 1

    # self-training (the lab's improved stage): only the encoder learns, the decoder is left as it was
    r = run_recon(ReconConfig(speech=str(env["speech"]), synth=str(env["synth"]), dvae=str(tmp_path / "dec.pth"),
                              out=str(tmp_path / "s.pth"), steps=10, batch=8, recon_weight=0.0, anchor_weight=1.0,
                              pseudo_weight=1.0, pseudo_rounds=2, models=str(env["models"])))
    st = load_dvae(tmp_path / "s.pth")
    assert {"pseudo_changed_round0", "pseudo_changed_round1"} <= set(r) and "recon_mse_final" not in r
    assert all(torch.equal(v, dec.state_dict()[k]) for k, v in st.state_dict().items() if k.startswith("decoder"))
    assert any(not torch.equal(v, dec.state_dict()[k]) for k, v in st.state_dict().items() if k.startswith("encoder"))
    with pytest.raises(TortunerError, match="nothing to train"):
        run_recon(ReconConfig(speech=str(env["speech"]), synth=str(env["synth"]), dvae=str(tmp_path / "dec.pth"),
                              out=str(tmp_path / "x.pth"), recon_weight=0.0, anchor_weight=0.0))

    out = run_eval(EvalConfig(speech=str(env["speech"]), dvae=str(tmp_path / "r.pth"), reference=str(env["teacher"]),
                              models=str(env["models"])))
    assert 0 <= out["agreement_top1"] <= out["agreement_top5"] <= 1 and out["nll_ratio"] > 0
    assert 1 <= out["codes_used"] <= 16 and out["clips"] == 8


def test_eval_of_reference_against_itself(rec_env):
    teacher = load_dvae(rec_env["teacher"])
    gpt = load_tortoise_model(rec_env["models"], "gpt")
    m = score_tokenizer(teacher, load_real(rec_env["speech"]), teacher, gpt)
    assert m["agreement_top1"] == m["agreement_top5"] == 1.0 and m["nll"] == m["nll_reference"]


def test_baseline_and_hungarian(rec_env, tmp_path):
    run_baseline(BaselineConfig(speech=str(rec_env["speech"]), models=str(rec_env["models"]),
                                out=str(tmp_path / "b.pth"), steps=30, batch=8, **SMALL))
    clips = load_real(rec_env["speech"])
    teacher = load_dvae(rec_env["teacher"])
    m = matched_agreement(load_dvae(tmp_path / "b.pth"), teacher, clips)
    assert m["agreement_top1"] <= m["matched_agreement_top1"] <= 1
    # a pure relabelling of the teacher's own codes is undone exactly by the matching
    perm = load_dvae(rec_env["teacher"])
    p = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    perm.codebook.embed.copy_(teacher.codebook.embed[:, p])
    assert matched_agreement(perm, teacher, clips)["matched_agreement_top1"] == 1.0


def test_pseudo_labels_use_the_gpt_among_the_encoder_candidates(rec_env):
    teacher = load_dvae(rec_env["teacher"])
    gpt = load_tortoise_model(rec_env["models"], "gpt").eval()
    for p in gpt.parameters():
        p.data.mul_(3.0)  # a random GPT with opinions
    clips = [c for c in load_real(rec_env["speech"]) if c.text][:3]
    plain, ch0 = pseudo_pairs(teacher, gpt, clips, 4410, lam=0.0, k=5)
    assert ch0 == 0 and all(torch.equal(p.tokens, teacher.tokenize(p.mel[None])[0]) for p in plain)
    guided, ch = pseudo_pairs(teacher, gpt, clips, 4410, lam=100.0, k=5)
    assert ch > 0 and [p.tokens.numel() for p in guided] == [p.tokens.numel() for p in plain]
    for p in guided:
        top5 = teacher.logits(p.mel[None])[0].topk(5, -1).indices
        assert (top5 == p.tokens[:, None]).any(-1).all()  # only the encoder's candidates are ever chosen


def test_labelling_resumed_from_part_of_its_labels_finishes_with_the_same_labels(rec_env):
    """`recover recon` keeps the labels found so far while a round is labelled: a call given them searches only the
    rest and returns what an uninterrupted call returns."""
    torch.manual_seed(0)
    teacher, gpt = load_dvae(rec_env["teacher"]), load_tortoise_model(rec_env["models"], "gpt").eval()
    for p in gpt.parameters():
        p.data.mul_(3.0)  # a random GPT with opinions
    clips = [c for c in load_real(rec_env["speech"]) if c.text]
    seen: list[dict] = []
    full, changed = pseudo_pairs(teacher, gpt, clips, 4410, lam=100.0, batch=2,
                                 on_batch=lambda d: seen.append(dict(d)))
    assert len(seen) == 4 and changed > 0  # 8 clips, 2 per batch
    searched: list[int] = []
    resumed, again = pseudo_pairs(teacher, gpt, clips, 4410, lam=100.0, batch=2, labelled=seen[1],
                                  on_batch=lambda d: searched.append(len(d)))
    assert searched == [6, 8]  # the two labelled batches were not searched again
    assert again == changed and all(torch.equal(a.tokens, b.tokens) for a, b in zip(full, resumed))
