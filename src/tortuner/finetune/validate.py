"""What a fine-tune run measures on its validation clips: text/mel CE, the code NLL, and a few sampled utterances.

Both run on the main process under a forked RNG (see `trainer.train_gpt`), so they never shift the training stream.
"""

from __future__ import annotations

import torch
from torch import nn

from tortuner.models.gpt_data import code_nll, gpt_losses, total_loss
from tortuner.models.tortoise import GPTConfig, build_gpt
from tortuner.synth.sample import inference_speech


@torch.no_grad()
def validate(gpt: nn.Module, batches: list[dict], device: torch.device, autocast) -> dict[str, float]:
    """Mean text/mel CE over validation batches, their weighted sum, and the per-token NLL of the clips' codes
    (nats). `autocast` is a context-manager factory (the accelerator's, or `contextlib.nullcontext`)."""
    was = gpt.training
    gpt.eval()
    lt = lm = 0.0
    n = 0
    nll, count = 0.0, 0
    for b in batches:
        b = {k: v.to(device) for k, v in b.items()}
        with autocast():
            t, m = gpt_losses(gpt, b)
            s, c = code_nll(gpt, b)
        k = b["text"].shape[0]
        lt, lm, n = lt + float(t) * k, lm + float(m) * k, n + k
        nll, count = nll + s, count + c
    gpt.train(was)
    if n == 0:
        return {}
    return {"loss_text": lt / n, "loss_mel": lm / n,
            "loss": total_loss(torch.tensor(lt / n), torch.tensor(lm / n)).item(), "code_nll": nll / max(count, 1)}


@torch.no_grad()
def generate_samples(gpt: nn.Module, gpt_config: GPTConfig, batch: dict, count: int, seed: int) -> list[dict]:
    """Sample codes for the first `count` texts of a batch with TorToiSe's sampling settings (on a copy of the GPT,
    because `post_init_gpt2_config` grafts an inference wrapper onto the model)."""
    gen = build_gpt(gpt_config).to(next(gpt.parameters()).device)
    gen.load_state_dict(gpt.state_dict())
    gen.eval().post_init_gpt2_config(kv_cache=True)
    out = []
    device = next(gen.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in range(min(count, batch["text"].shape[0])):
            text = batch["text"][i, : batch["text_lengths"][i]][None].to(device)
            conds = gen.get_conditioning(batch["cond_mels"][i : i + 1].to(device))
            ref = int(batch["wav_lengths"][i]) // gpt_config.mel_length_compression
            codes = inference_speech(gen, conds, text, do_sample=True, top_p=0.8, temperature=0.8,
                                     repetition_penalty=2.0, length_penalty=1.0,
                                     max_generate_length=min(2 * ref + 10, gpt_config.max_mel_tokens - 1))[0]
            stop = (codes == gpt_config.stop_mel_token).nonzero()
            n = int(stop[0]) if len(stop) else codes.numel()
            out.append({"index": i, "reference_codes": ref, "generated_codes": n, "stopped": bool(len(stop)),
                        "codes": codes[:n].tolist()})
    del gen
    return out
