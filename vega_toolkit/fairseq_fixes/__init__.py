"""Every narrow fix of fairseq-fixed 0.12.3.1's behaviour, one module each, installed by one call on
`import vega_toolkit` (so `vega-train`, `fairseq-train --user-dir user_dir` and Python users get the same fixes):

| module | what stock fairseq does | with the fix |
|---|---|---|
| checkpoint_loading.py | every checkpoint read fails under torch>=2.6's `weights_only=True` default | read under an allow-list of the classes fairseq's checkpoints hold; broken files are errors naming the file |
| atomic_writes.py | checkpoint_last.pt is copied in place: a kill mid-copy leaves it truncated | written and copied through an fsync'ed temporary file and a rename |
| batching.py | `batch_by_size` drops a split's last examples (rounding to --required-batch-size-multiple) | the left-out examples form extra batches |
| full_help.py | `--help` lists no option of the chosen --arch/--task/--criterion | it does |
| bf16.py | `--bf16` sets `tpu=True` (the XLA code path) | `tpu` stays as given |
"""
from vega_toolkit.fairseq_fixes import atomic_writes, batching, bf16, checkpoint_loading, full_help

FIXES = (checkpoint_loading, atomic_writes, batching, full_help, bf16)


def install():
    """Install every fix (idempotent: each module remembers the fairseq function it wrapped)."""
    for fix in FIXES:
        fix.install()
