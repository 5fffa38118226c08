"""The toolkit's file and checkpoint I/O: `atomic` (every file a reader may open while it is written appears whole
or not at all) and `checkpoints` (fairseq checkpoints read under torch's weights-only unpickler, errors naming the
file, a broken checkpoint_last.pt replaced by the newest readable one). fairseq_fixes/ routes fairseq's own
checkpoint reads and writes through them."""
