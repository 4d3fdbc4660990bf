"""Two gloo ranks on CPU give the loss and the gradients of one process on the concatenated batch."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from voiceclap.model import VoiceCLAP
from voiceclap.towers import Features
from voiceclap.train import distributed
from voiceclap.train.data import TrainBatch
from voiceclap.train.loss import VoiceCLAPLoss
from voiceclap.train.towers import TrainableTowers, apply_freezing, make_plan

K = 2
RANK_SIZES = [3, 2]  # unequal on purpose: a batch can lose clips that fail to decode


def make_towers() -> TrainableTowers:
    torch.manual_seed(0)
    model = VoiceCLAP.from_config("tiny-test", load_base_weights=False)
    plan = make_plan(model, -1, -1, False)  # the top layer of each encoder trains
    apply_freezing(model, plan)
    return TrainableTowers(model, plan).eval()  # eval: no dropout, so ranks and reference agree


def make_batch() -> TrainBatch:
    """Cached-style features after the frozen layers: [N, T, 32] hidden states with masks."""
    generator = torch.Generator().manual_seed(1)
    n = sum(RANK_SIZES)
    audio_lengths = torch.tensor([8, 6, 4, 8, 2])
    text_lengths = torch.randint(3, 7, (n * (1 + K),), generator=generator)
    return TrainBatch(
        audio=Features(torch.randn(n, 8, 32, generator=generator), torch.arange(8) < audio_lengths[:, None]),
        texts=Features(torch.randn(n * (1 + K), 6, 32, generator=generator), torch.arange(6) < text_lengths[:, None]),
        # one zero-WER (masked) corruption included
        error_rates=torch.tensor([[0.2, 0.9], [0.5, 0.0], [1.0, 0.3], [0.4, 0.7], [0.6, 1.2]]),
        ids=[str(i) for i in range(n)],
        languages=["en"] * n,
        text_index=torch.arange(n * (1 + K)).view(n, 1 + K),
    )


def rows(batch: TrainBatch, start: int, stop: int) -> TrainBatch:
    texts = slice(start * (1 + K), stop * (1 + K))
    return TrainBatch(
        audio=Features(batch.audio.values[start:stop], batch.audio.mask[start:stop]),
        texts=Features(batch.texts.values[texts], batch.texts.mask[texts]),
        error_rates=batch.error_rates[start:stop],
        ids=batch.ids[start:stop],
        languages=batch.languages[start:stop],
        text_index=torch.arange((stop - start) * (1 + K)).view(stop - start, 1 + K),
    )


def loss_and_grads(towers: TrainableTowers, module, batch: TrainBatch, world_size: int):
    audio, texts = module(batch)
    model = towers.model
    loss = VoiceCLAPLoss(cross_clip_margin_weight=1.0)  # every term, the one ranking across ranks too
    terms = loss(audio, texts, batch.error_rates, model.logit_scale, model.logit_bias)
    (terms["loss"] * world_size).backward()  # as the trainer does: DDP averages over ranks
    grads = {n: p.grad.clone() for n, p in towers.named_parameters() if p.requires_grad}
    return {k: v.item() for k, v in terms.items()}, grads


def rank_main(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(len(RANK_SIZES)))
    torch.set_num_threads(1)
    info = distributed.init_distributed("cpu")
    towers = make_towers()
    start = sum(RANK_SIZES[:rank])
    local = rows(make_batch(), start, start + RANK_SIZES[rank])
    terms, grads = loss_and_grads(towers, DistributedDataParallel(towers), local, info.world_size)
    torch.save({"terms": terms, "grads": grads}, os.path.join(out_dir, f"rank{rank}.pt"))
    distributed.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_equal_one_process_on_the_concatenated_batch(tmp_path):
    mp.spawn(rank_main, args=(free_port(), str(tmp_path)), nprocs=len(RANK_SIZES), join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(len(RANK_SIZES))]

    towers = make_towers()
    reference_terms, reference_grads = loss_and_grads(towers, towers, make_batch(), world_size=1)

    # Each rank returns its share of the global-batch loss; the shares add up to the whole.
    for name, value in reference_terms.items():
        assert sum(r["terms"][name] for r in results) == pytest.approx(value, rel=1e-5, abs=1e-6)
    # After DDP's average every rank holds the gradient of the whole batch's loss.
    assert set(reference_grads) == set(results[0]["grads"])
    for result in results:
        for name, grad in reference_grads.items():
            torch.testing.assert_close(result["grads"][name], grad, rtol=1e-4, atol=1e-6)
    assert any(g.abs().sum() > 0 for n, g in reference_grads.items() if "layer" in n)  # through the layers
