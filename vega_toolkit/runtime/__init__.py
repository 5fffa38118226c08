"""What keeps a running training safe: vega-train's guards around one fairseq training.

- training.py: the training itself (`parse_training_args`, `train_once`) and `guarded_training`, which repairs a
  truncated checkpoint_last.pt from the newest readable checkpoint (io/checkpoints.py), makes a finished command a
  no-op, and refuses a restored head of the wrong size or a checkpoint of another vocabulary before fairseq loads it;
- save_dir_lock.py: one run per --save-dir;
- graceful_stop.py: SIGTERM/SIGUSR1 stop a single-process run at its next update with checkpoint_last.pt saved;
- preemption.py: submitit's preemption signals held back while a checkpoint is written.
"""
