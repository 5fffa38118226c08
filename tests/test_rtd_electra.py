"""rtd_electra and rtd_ternary --replace-with generator: GDES / ES / none gradients, labels of the generator's
replacements, the checkpointed generator, the exported discriminator, and a tiny run that learns."""

import os

import pytest
import torch
from glue_helpers import FIXTURES, vega_train
from test_expected_loss import logged, run
from test_model_folder import vega_convert
from test_rtd_criterions import batches, build

from vega_toolkit.data.noising import IGNORE_INDEX, ORIGINAL, REPLACED, RTD_HEAD_NAME, SHUFFLED

TINY = [
    "--arch",
    "vega_tiny",
    "--encoder-layers",
    "1",
    "--encoder-embed-dim",
    "32",
    "--encoder-ffn-embed-dim",
    "64",
    "--encoder-attention-heads",
    "2",
    "--tokens-per-sample",
    "64",
    "--batch-size",
    "8",
    "--optimizer",
    "adam",
    "--lr",
    "1e-3",
    "--cpu",
    "--num-workers",
    "0",
    "--log-format",
    "simple",
    "--seed",
    "1",
    "--no-epoch-checkpoints",
]


def electra(data_bin, sharing, *extra):
    return build(data_bin, "rtd_electra", "--embedding-sharing", sharing, *extra)


def separate_losses(model, criterion, sample):
    """(summed MLM loss, summed discriminator loss) of one batch, from the criterion's own corruption and head."""
    from vega_toolkit.criterions.rtd_ternary import rtd_loss_and_counts

    src, labels, mlm_loss, _ = criterion.corrupt(model, sample)
    logits, _ = model(src, token_head_name=RTD_HEAD_NAME, embedding_hook=criterion.generator.discriminator_hook(src))
    logits = logits.index_fill(-1, torch.tensor([SHUFFLED]), float("-inf"))
    return mlm_loss, rtd_loss_and_counts(logits, labels)[0]


def grads(loss, params):
    found = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, found, strict=True)]


def test_gdes_delta_starts_at_zero_and_each_loss_trains_only_its_embedding(tiny_data_bin):
    task, model, criterion = electra(tiny_data_bin, "gdes")
    e_g, e_delta = model.encoder.embed_tokens.weight, criterion.generator.embedding_delta
    assert e_delta.shape == e_g.shape and torch.count_nonzero(e_delta) == 0
    mlm_loss, rtd_loss = separate_losses(model, criterion, next(batches(task)))
    rtd_on_g, rtd_on_delta = grads(rtd_loss, [e_g, e_delta])
    mlm_on_g, mlm_on_delta = grads(mlm_loss, [e_g, e_delta])
    assert torch.count_nonzero(rtd_on_g) == 0 and torch.count_nonzero(mlm_on_delta) == 0  # exactly zero
    assert torch.count_nonzero(rtd_on_delta) > 0 and torch.count_nonzero(mlm_on_g) > 0


def test_gdes_discriminator_reads_the_sum_of_the_generator_embedding_and_the_delta(tiny_data_bin):
    task, model, criterion = electra(tiny_data_bin, "gdes")
    model.eval()
    with torch.no_grad():
        criterion.generator.embedding_delta.normal_(0.0, 0.5)
        tokens = next(batches(task))["original_tokens"]
        ours, _ = model(tokens, features_only=True, embedding_hook=criterion.generator.discriminator_hook(tokens))
        model.encoder.embed_tokens.weight += criterion.generator.embedding_delta
        merged, _ = model(tokens, features_only=True)
    assert torch.allclose(ours, merged, atol=1e-6)


def test_es_shares_one_embedding_that_both_losses_train(tiny_data_bin):
    task, model, criterion = electra(tiny_data_bin, "es")
    names = {n for n, _ in criterion.named_parameters()}
    assert not any("embed_tokens" in n or "embedding_delta" in n for n in names), names
    e = model.encoder.embed_tokens.weight
    mlm_loss, rtd_loss = separate_losses(model, criterion, next(batches(task)))
    assert torch.count_nonzero(grads(mlm_loss, [e])[0]) > 0 and torch.count_nonzero(grads(rtd_loss, [e])[0]) > 0


def test_none_keeps_two_embeddings_each_trained_by_its_own_loss(tiny_data_bin):
    task, model, criterion = electra(tiny_data_bin, "none")
    e_d, e_g = model.encoder.embed_tokens.weight, criterion.generator.encoder.embed_tokens.weight
    assert e_d is not e_g and not hasattr(criterion.generator, "embedding_delta")
    mlm_loss, rtd_loss = separate_losses(model, criterion, next(batches(task)))
    assert torch.count_nonzero(grads(mlm_loss, [e_d])[0]) == 0 and torch.count_nonzero(grads(rtd_loss, [e_g])[0]) == 0
    assert torch.count_nonzero(grads(mlm_loss, [e_g])[0]) > 0 and torch.count_nonzero(grads(rtd_loss, [e_d])[0]) > 0


def test_default_generator_is_half_deep_and_full_width_and_the_fraction_scales_width_heads_and_ffn(tiny_data_bin):
    _, _, criterion = electra(tiny_data_bin, "gdes", "--encoder-layers", "4")
    assert len(criterion.generator.encoder.layers) == 2  # DeBERTa-v3: half the depth
    assert criterion.generator.encoder.cfg.encoder_embed_dim == 128
    _, _, criterion = electra(tiny_data_bin, "es", "--generator-layers", "2", "--generator-width-fraction", "0.5")
    cfg = criterion.generator.encoder.cfg
    assert (
        len(criterion.generator.encoder.layers),
        cfg.encoder_embed_dim,
        cfg.encoder_attention_heads,
        cfg.encoder_ffn_embed_dim,
    ) == (2, 64, 1, 256)
    assert cfg.embedding_dim == 128  # the shared embedding keeps the discriminator's width, projected to 64


def test_a_sample_equal_to_the_original_is_labelled_original_and_replaced_tokens_always_differ(tiny_data_bin):
    task, model, criterion = electra(tiny_data_bin, "gdes")
    from vega_toolkit.criterions.rtd_ternary import most_frequent_piece

    top = most_frequent_piece(task.source_dictionary, task.noiser.is_special)
    with torch.no_grad():  # the generator proposes the most frequent piece almost always: many draws equal originals
        criterion.generator.encoder.lm_head.bias[top] = 30.0
    equal_seen = masked_total = 0
    for sample in batches(task, n=64):
        with torch.no_grad():
            src, labels, _, counts = criterion.corrupt(model, sample)
        original, eligible = sample["original_tokens"], labels != IGNORE_INDEX
        assert (src[labels == REPLACED] != original[labels == REPLACED]).all()
        assert (src[labels == ORIGINAL] == original[labels == ORIGINAL]).all()
        assert torch.equal(src[~eligible], original[~eligible])  # specials and pads are never touched
        assert not task.noiser.is_special[src[eligible]].any()
        equal_seen += int(((src == original) & (original == top) & eligible).sum())
        masked_total += counts["mlm_n"]
        assert counts["mlm_n"] >= int((labels == REPLACED).sum())
    assert equal_seen > 0 and masked_total > 0


def test_masked_share_is_the_mask_prob(tiny_data_bin):
    task, model, criterion = electra(tiny_data_bin, "gdes", "--mask-prob", "0.3")
    masked = eligible = 0
    for sample in batches(task, n=200):
        with torch.no_grad():
            _, labels, _, counts = criterion.corrupt(model, sample)
        masked += counts["mlm_n"]
        eligible += int((labels != IGNORE_INDEX).sum())
    assert masked / eligible == pytest.approx(0.3, abs=0.01)


def test_ternary_with_generator_keeps_the_shuffle_and_replaces_with_generator_samples(tiny_data_bin):
    task, model, criterion = build(tiny_data_bin, "rtd_ternary", "--replace-with", "generator")
    sample = next(batches(task))
    with torch.no_grad():
        src, labels, _, counts = criterion.corrupt_with_generator(model, sample)
    task_src, task_labels = sample["net_input"]["src_tokens"], sample["target"]
    shuffled = task_labels == SHUFFLED
    assert torch.equal(labels[shuffled], task_labels[shuffled]) and torch.equal(src[shuffled], task_src[shuffled])
    chosen = task_labels == REPLACED
    assert counts["mlm_n"] == int(chosen.sum()) > 0
    assert (src[labels == REPLACED] != sample["original_tokens"][labels == REPLACED]).all()
    assert set(labels[chosen].tolist()) <= {ORIGINAL, REPLACED}


def test_default_ternary_has_no_generator_and_no_criterion_parameters(tiny_data_bin):
    _, _, criterion = build(tiny_data_bin, "rtd_ternary")
    assert criterion.generator is None and not list(criterion.parameters())


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--embedding-sharing", "gdes", "--embedding-dim", "64"], "--embedding-sharing gdes needs"),
        (["--generator-width-fraction", "0"], "--generator-width-fraction must be in (0, 1]"),
        (["--generator-layers", "-1"], "--generator-layers must be >= 0"),
        (["--mask-prob", "0"], "--mask-prob must be in (0, 1]"),
    ],
)
def test_bad_generator_flags_are_rejected_before_training_naming_the_flag(tiny_data_bin, flags, says):
    with pytest.raises(ValueError) as err:
        build(tiny_data_bin, "rtd_electra", *flags)
    assert says in str(err.value)


@pytest.fixture(scope="module")
def electra_runs(tiny_data_bin, tmp_path_factory):
    """rtd_electra (gdes): 4 updates straight, and 2 updates then resumed to 4."""
    root = tmp_path_factory.mktemp("electra")
    base = [
        str(tiny_data_bin),
        "--task",
        "denoising_pretrain",
        "--criterion",
        "rtd_electra",
        "--embedding-sharing",
        "gdes",
        *TINY,
        "--disable-validation",
    ]
    for name, updates in (("straight", [4]), ("resumed", [2, 4])):
        for n in updates:
            proc = vega_train(base + ["--max-update", str(n), "--save-dir", str(root / name)])
            assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.mark.slow
def test_generator_is_saved_in_the_checkpoint_and_restored_on_resume(electra_runs):
    straight = torch.load(electra_runs / "straight" / "checkpoint_last.pt", weights_only=False)
    resumed = torch.load(electra_runs / "resumed" / "checkpoint_last.pt", weights_only=False)
    generator = straight["criterion"]
    assert "generator.embedding_delta" in generator and any(
        k.startswith("generator.encoder.layers.") for k in generator
    )
    assert torch.count_nonzero(generator["generator.embedding_delta"]) > 0  # trained away from its zero start
    # a run stopped after 2 updates and resumed ends where the uninterrupted run ends: the generator was reloaded
    for group in ("model", "criterion"):
        for key, value in straight[group].items():
            assert torch.allclose(value, resumed[group][key], atol=1e-6), (group, key)


@pytest.mark.slow
def test_export_writes_the_discriminator_with_the_merged_embedding_and_it_fine_tunes(
    electra_runs, tiny_data_bin, tmp_path
):
    ckpt = electra_runs / "straight" / "checkpoint_last.pt"
    proc = vega_convert("export", ckpt, "--data-bin", tiny_data_bin, tmp_path / "model")
    assert proc.returncode == 0, proc.stderr[-3000:]
    source = torch.load(ckpt, weights_only=False)
    exported = torch.load(tmp_path / "model" / "model.pt", weights_only=False)["model"]
    key = "encoder.embeddings.embed_tokens.weight"
    merged = source["model"][key] + source["criterion"]["generator.embedding_delta"]
    assert torch.equal(exported[key], merged) and torch.equal(exported["encoder.lm_head.weight"], merged)
    assert not any(k.startswith(("generator.", "token_heads.")) for k in exported)
    assert set(exported) == {k for k in source["model"] if not k.startswith("token_heads.")}
    train = vega_train(
        [
            os.path.join(FIXTURES, "RTE"),
            "--task",
            "glue",
            "--glue-task",
            "RTE",
            "--vocab-dir",
            str(tmp_path / "model"),
            *TINY[:8],
            "--finetune-from-model",
            str(tmp_path / "model" / "model.pt"),
            "--criterion",
            "glue_prediction",
            "--classification-head-name",
            "rte_head",
            "--optimizer",
            "adam",
            "--lr",
            "1e-3",
            "--batch-size",
            "8",
            "--max-update",
            "2",
            "--cpu",
            "--num-workers",
            "0",
            "--glue-cache-dir",
            str(tmp_path / "cache"),
            "--save-dir",
            str(tmp_path / "rte"),
            "--no-epoch-checkpoints",
            "--log-format",
            "simple",
        ]
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert (tmp_path / "rte" / "checkpoint_last.pt").exists()


@pytest.mark.slow
def test_fine_tuning_straight_from_a_gdes_pretraining_checkpoint_is_refused_naming_the_export(
    electra_runs, tiny_data_bin, tmp_path
):
    ckpt = electra_runs / "straight" / "checkpoint_last.pt"
    train = vega_train(
        [
            os.path.join(FIXTURES, "RTE"),
            "--task",
            "glue",
            "--glue-task",
            "RTE",
            "--vocab-dir",
            str(tiny_data_bin),
            *TINY[:8],
            "--finetune-from-model",
            str(ckpt),
            "--criterion",
            "glue_prediction",
            "--classification-head-name",
            "rte_head",
            "--optimizer",
            "adam",
            "--lr",
            "1e-3",
            "--batch-size",
            "8",
            "--max-update",
            "2",
            "--cpu",
            "--num-workers",
            "0",
            "--glue-cache-dir",
            str(tmp_path / "cache"),
            "--save-dir",
            str(tmp_path / "rte"),
        ]
    )
    assert train.returncode != 0
    lines = train.stderr.strip().splitlines()
    assert "is an rtd_electra --embedding-sharing gdes pretraining checkpoint" in lines[-1], train.stderr[-3000:]
    assert "vega-convert export" in lines[-1] and "Traceback" not in train.stderr
    assert not (tmp_path / "rte" / "checkpoint_last.pt").exists()


@pytest.mark.slow
def test_tiny_run_beats_the_all_original_and_unigram_baselines_on_held_out_data(tiny_data_bin):
    """vega_tiny, 200 updates (about 40 s of one core): held-out discriminator accuracy above calling every token
    original, and the generator's masked-token accuracy above always predicting the most frequent piece (measured
    with the same flags at update 150: rtd_acc 0.897 against 0.886, gen_acc 0.437 against 0.074)."""
    log = run(
        [
            tiny_data_bin,
            "--task",
            "denoising_pretrain",
            "--criterion",
            "rtd_electra",
            "--embedding-sharing",
            "gdes",
            "--arch",
            "vega_tiny",
            "--tokens-per-sample",
            "64",
            "--batch-size",
            "16",
            "--optimizer",
            "adam",
            "--lr",
            "2e-3",
            "--dropout",
            "0",
            "--attention-dropout",
            "0",
            "--log-format",
            "simple",
            "--log-interval",
            "50",
            "--cpu",
            "--num-workers",
            "0",
            "--seed",
            "1",
            "--no-save",
            "--max-update",
            "200",
            "--validate-interval-updates",
            "200",
        ]
    )
    last = {key: logged(log, "valid", key)[-1] for key in ("rtd_acc", "prior_acc", "gen_acc", "gen_unigram_acc")}
    assert all(step == 200 for step, _ in last.values()), last
    assert last["rtd_acc"][1] > last["prior_acc"][1], last
    assert last["gen_acc"][1] > last["gen_unigram_acc"][1], last


def test_generator_arms_pretrain_fewer_updates_for_the_training_flops_of_rtd_ternary(tmp_path):
    """Equal compute: updates x FLOPs per token of a generator arm = the rtd_ternary run's (to one update), and the
    study's pretraining command carries that count."""
    from vega_toolkit.study.cells import build_cells
    from vega_toolkit.study.generator_flops import flops_per_token
    from vega_toolkit.study.plan import ARMS, SCALES, pretrain_budget

    cpu = SCALES["cpu"]
    base = flops_per_token(cpu.arch, 128, 8000, ARMS["rtd_ternary"].pretrain_args)
    for name in ("rtd_electra", "rtd_electra_es", "rtd_ternary_generator"):
        arm = ARMS[name]
        updates = pretrain_budget(cpu, arm).updates
        per_update = flops_per_token(cpu.arch, 128, 8000, arm.pretrain_args)
        assert updates < cpu.pretrain.updates
        assert abs(updates * per_update - cpu.pretrain.updates * base) <= per_update, name
    assert pretrain_budget(cpu, ARMS["masked_lm"]) == cpu.pretrain  # other arms keep the scale's budget
    (tmp_path / "corpus").mkdir()
    cells = build_cells(
        SCALES["smoke"], FIXTURES, str(tmp_path / "corpus"), arms=("rtd_ternary", "rtd_electra"), tasks=("RTE",)
    )
    commands = {c.fields["arm"]: c.commands[0] for c in cells if c.kind == "pretrain"}
    updates = {arm: int(cmd[cmd.index("--max-update") + 1]) for arm, cmd in commands.items()}
    assert updates == {"rtd_ternary": 6, "rtd_electra": pretrain_budget(SCALES["smoke"], ARMS["rtd_electra"]).updates}
    assert updates["rtd_electra"] < 6
