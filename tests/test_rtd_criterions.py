"""rtd_ternary and rtd_contrastive: losses against oracles, exact metric aggregation, gradients, rates."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fairseq.logging import metrics
from sklearn.metrics import recall_score

from vega_toolkit.criterions.rtd_contrastive import gather_across_data_parallel
from vega_toolkit.data.noising import IGNORE_INDEX, RTD_HEAD_NAME, label_prior_bits


def build(data_bin, criterion, *extra):
    """Task, model and criterion through fairseq's own parser and builders (what vega-train does)."""
    from fairseq import tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from vega_toolkit.runtime.training import parse_training_args

    args = parse_training_args(
        [
            str(data_bin),
            "--task",
            "denoising_pretrain",
            "--criterion",
            criterion,
            "--arch",
            "vega_tiny",
            "--tokens-per-sample",
            "64",
            "--batch-size",
            "8",
            "--cpu",
            "--seed",
            "3",
            "--dropout",
            "0",
            "--attention-dropout",
            "0",
            *extra,
        ]
    )
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    model = task.build_model(cfg.model)
    return task, model, task.build_criterion(cfg.criterion)


def batches(task, split="train", n=None, batch_size=8):
    task.load_dataset(split)
    ds = task.dataset(split)
    n = len(ds) if n is None else n
    for start in range(0, n, batch_size):
        yield ds.collater([ds[i] for i in range(start, min(n, start + batch_size))])


def reduced(criterion_cls, logging_outputs):
    with metrics.aggregate(new_root=True) as agg:
        criterion_cls.reduce_metrics(logging_outputs)
        return agg.get_smoothed_values()


@pytest.fixture(scope="module")
def ternary(tiny_data_bin):
    return build(tiny_data_bin, "rtd_ternary")


def test_task_registers_the_rtd_head_before_the_optimizer_exists(ternary):
    _, model, _ = ternary
    assert RTD_HEAD_NAME in model.token_heads
    assert model.token_heads[RTD_HEAD_NAME].out_proj.out_features == 3
    head_params = {id(p) for p in model.token_heads.parameters()}
    assert head_params <= {id(p) for p in model.parameters()}


def test_rtd_ternary_loss_is_cross_entropy_summed_over_eligible_tokens(ternary):
    task, model, criterion = ternary
    sample = next(batches(task))
    model.eval()
    loss, sample_size, log = criterion(model, sample)
    logits, _ = model(sample["net_input"]["src_tokens"], token_head_name=RTD_HEAD_NAME)
    keep = sample["target"] != IGNORE_INDEX
    expected = F.cross_entropy(logits[keep], sample["target"][keep], reduction="sum")
    assert torch.allclose(loss, expected, rtol=1e-5)
    assert int(sample_size) == int(keep.sum())


def test_metrics_aggregate_exactly_over_batches(ternary):
    task, model, criterion = ternary
    model.eval()
    logs, preds, labels = [], [], []
    for sample in batches(task, n=32):
        with torch.no_grad():
            _, _, log = criterion(model, sample)
            logits, _ = model(sample["net_input"]["src_tokens"], token_head_name=RTD_HEAD_NAME)
        keep = sample["target"] != IGNORE_INDEX
        logs.append(log)
        preds.append(logits[keep].argmax(-1))
        labels.append(sample["target"][keep])
    preds, labels = torch.cat(preds).numpy(), torch.cat(labels).numpy()
    values = reduced(type(criterion), logs)
    recalls = recall_score(labels, preds, labels=[0, 1, 2], average=None, zero_division=0)
    assert values["rtd_acc"] == pytest.approx((preds == labels).mean())
    for name, recall in zip(("orig", "shuf", "repl"), recalls, strict=True):
        assert values[f"{name}_recall"] == pytest.approx(recall)
    assert values["shuf_frac"] == pytest.approx((labels == 1).mean())
    assert values["repl_frac"] == pytest.approx((labels == 2).mean())
    fractions = np.bincount(labels, minlength=3) / len(labels)
    assert values["prior_loss"] == pytest.approx(
        -(fractions * np.log2(np.where(fractions > 0, fractions, 1))).sum(), abs=1e-3
    )
    total_loss = sum(float(log["loss"]) for log in logs)
    assert values["loss"] == pytest.approx(total_loss / len(labels) / math.log(2), abs=1e-3)


def test_label_prior_is_the_loss_of_knowing_only_the_corruption_rates():
    assert label_prior_bits(0.10, 0.05) == pytest.approx(0.7476, abs=1e-4)  # Vega's 10% / 5%
    assert label_prior_bits(0.15, 0.0) == label_prior_bits(0.0, 0.15) == pytest.approx(0.6098, abs=1e-4)
    assert label_prior_bits(0.0, 0.0) == 0.0


def test_logged_rates_over_2000_task_sequences_are_within_10_percent_of_the_flags(ternary):
    task, _, criterion = ternary
    task.load_dataset("train")
    ds = task.dataset("train")
    labels, epoch = [], 0
    while sum(len(x) for x in labels) < 2000:
        epoch += 1
        ds.set_epoch(epoch)
        batch = ds.collater([ds[i] for i in range(len(ds))])
        labels.append(batch["target"])
    logs = []
    for target in (t for chunk in labels for t in chunk.split(64)):
        n = {k: (target == v).sum() for k, v in (("orig", 0), ("shuf", 1), ("repl", 2))}
        logs.append(
            {
                "loss": 0.0,
                "rtd_n": (target != IGNORE_INDEX).sum(),
                "rtd_correct": 0,
                **{f"rtd_n_{k}": v for k, v in n.items()},
                **{f"rtd_correct_{k}": 0 for k in n},
            }
        )
    values = reduced(type(criterion), logs)
    assert sum(len(x) for x in labels) >= 2000
    assert abs(values["shuf_frac"] - 0.10) / 0.10 < 0.10
    assert abs(values["repl_frac"] - 0.05) / 0.05 < 0.10


@pytest.fixture(scope="module")
def contrastive(tiny_data_bin):
    return build(tiny_data_bin, "rtd_contrastive", "--temperature", "0.05")


def test_contrastive_uses_one_forward_pass_over_both_views(contrastive):
    task, model, criterion = contrastive
    sample = next(batches(task))
    calls = []
    handle = model.register_forward_hook(lambda m, args, out: calls.append(args[0].shape))
    try:
        criterion(model, sample)
    finally:
        handle.remove()
    bsz, length = sample["net_input"]["src_tokens"].shape
    assert calls == [torch.Size([2 * bsz, length])]


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_contrastive_loss_matches_an_infonce_oracle(contrastive, pooling):
    task, model, criterion = contrastive
    sample = next(batches(task))
    model.eval()
    criterion.contrastive_pooling = pooling
    try:
        with torch.no_grad():
            loss, sample_size, log = criterion(model, sample)
            both = torch.cat([sample["net_input"]["src_tokens"], sample["original_tokens"]])
            hidden = model(both, features_only=True)[0]
    finally:
        criterion.contrastive_pooling = "cls"
    bsz = sample["nsentences"]
    if pooling == "cls":
        feats = hidden[:, 0]
    else:  # mean over real tokens only, one sequence at a time
        pad = task.source_dictionary.pad()
        feats = torch.stack([h[row != pad].mean(0) for h, row in zip(hidden, both, strict=True)])
    z = F.normalize(feats, dim=-1)
    corrupted, original = z[:bsz], z[bsz:]
    sim = original @ corrupted.t() / 0.05
    expected = F.cross_entropy(sim, torch.arange(bsz), reduction="sum")
    assert float(log["contrastive_loss"]) == pytest.approx(float(expected), rel=1e-4)
    assert int(log["cl_correct"]) == int((sim.argmax(-1) == torch.arange(bsz)).sum())
    expected_total = log["rtd_loss"] + criterion.contrastive_weight * expected / bsz * sample_size
    assert float(loss) == pytest.approx(float(expected_total), rel=1e-4)


def test_contrastive_gradient_reaches_the_encoder(contrastive):
    task, model, criterion = contrastive
    sample = next(batches(task))
    grads = {}
    for weight in (0.0, 1.0):
        criterion.contrastive_weight = weight
        model.zero_grad()
        loss, _, _ = criterion(model, sample)
        loss.backward()
        grads[weight] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    criterion.contrastive_weight = 1.0
    # the contrastive part of the gradient = difference; it must reach the word embeddings and the first layer
    embed = [n for n in grads[1.0] if "embed" in n and "weight" in n and grads[1.0][n].dim() == 2]
    first_layer = [n for n in grads[1.0] if ".layers.0." in n]
    assert embed and first_layer
    for name in embed + first_layer:
        assert not torch.allclose(grads[1.0][name], grads[0.0][name]), name


def test_gather_without_distributed_is_the_identity():
    z = torch.randn(3, 4, requires_grad=True)
    out, offset = gather_across_data_parallel(z)
    assert out is z and offset == 0


def test_bad_temperature_is_rejected_naming_the_flag(tiny_data_bin):
    with pytest.raises(ValueError, match="--temperature"):
        build(tiny_data_bin, "rtd_contrastive", "--temperature", "0")


def _gather_worker(rank, world_size, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        z = torch.full((rank + 1, 2), float(rank + 1), requires_grad=True)  # unequal batch sizes: 1 and 2 rows
        gathered, offset = gather_across_data_parallel(z)
        (gathered * torch.arange(1.0, len(gathered) + 1).unsqueeze(1)).sum().backward()
        torch.save({"gathered": gathered.detach(), "offset": offset, "grad": z.grad}, f"{out_dir}/{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gather_across_two_ranks_keeps_order_and_only_the_local_gradient(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    expected = torch.tensor([[1.0, 1.0], [2.0, 2.0], [2.0, 2.0]])
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    assert torch.equal(r0["gathered"], expected) and torch.equal(r1["gathered"], expected)
    assert (r0["offset"], r1["offset"]) == (0, 1)
    # d/dz of sum_i i * row_i: rank 0 owns row 1, rank 1 owns rows 2 and 3 (other ranks' rows carry no gradient)
    assert torch.equal(r0["grad"], torch.ones(1, 2))
    assert torch.equal(r1["grad"], torch.tensor([[2.0, 2.0], [3.0, 3.0]]))
