"""Every narrow fix of fairseq-fixed 0.12.3.1's behaviour, one module each, installed by one call on
`import vega_toolkit` (so `vega-train`, `fairseq-train --user-dir user_dir` and Python users get the same fixes):

- checkpoint_loading.py: every checkpoint read failed under torch>=2.6's `weights_only=True` default; now read
  under an allow-list of the classes fairseq's checkpoints hold, a broken file being an error that names it;
- atomic_writes.py: checkpoint_last.pt was copied in place (a kill mid-copy left it truncated); now every checkpoint
  is written and copied through an fsync'ed temporary file and a rename;
- batching.py: `batch_by_size` dropped a split's last examples (rounding to --required-batch-size-multiple); now
  they form extra batches;
- full_help.py: `--help` listed no option of the chosen --arch/--task/--criterion; now it does;
- bf16.py: `--bf16` set `tpu=True` (fairseq's XLA code path); now `tpu` stays as given;
- prefetch_thread_exit.py: a training stopped mid-epoch could abort at exit (SIGABRT) in fairseq's batch-prefetch
  thread; now that thread is stopped before the interpreter ends it;
- deferred_metric_imports.py: `import fairseq` imported scikit-learn and scipy.stats (1.0-1.6 CPU s of every
  command's start-up) for two modules that call them only at validation; now they are imported on first use.
"""

from vega_toolkit.fairseq_fixes import deferred_metric_imports

deferred_metric_imports.install()  # first: the fixes below import fairseq, and fairseq imports the deferred modules

from vega_toolkit.fairseq_fixes import (  # noqa: E402
    atomic_writes,
    batching,
    bf16,
    checkpoint_loading,
    full_help,
    prefetch_thread_exit,
)

FIXES = (
    deferred_metric_imports,
    checkpoint_loading,
    atomic_writes,
    batching,
    full_help,
    bf16,
    prefetch_thread_exit,
)


def install():
    """Install every fix (idempotent: each module remembers the fairseq function it wrapped)."""
    for fix in FIXES:
        fix.install()
