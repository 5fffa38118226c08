"""fairseq's mmap indexed dataset (`.bin` + `.idx`), written a batch of items at a time in bounded memory.

    writer = StreamingMMapBuilder("out/train.bin", dtype=np.uint16)
    writer.add_items(flat_ids, sizes)        # many items at once: ids concatenated, one size per item
    writer.finalize("out/train.idx")

A subclass of fairseq's `MMapIndexedDatasetBuilder` (same `.bin`, same `.idx` bytes: tests/test_preprocess.py checks
them against the stock builder): the stock one keeps a Python list of every item's size (tens of bytes per line of a
corpus: gigabytes for a large shard) and computes the index pointers in a Python loop at `finalize`. Here the sizes go
to a side file as they come and the index is written from it in blocks.
"""

import os
import struct

import numpy as np
from fairseq.data.indexed_dataset import MMapIndexedDataset, MMapIndexedDatasetBuilder, _dtype_header_code

_BLOCK = 1 << 20  # sizes per block when the index is written


class StreamingMMapBuilder(MMapIndexedDatasetBuilder):
    def __init__(self, out_file: str, dtype=np.int64):
        super().__init__(out_file, dtype=dtype)
        self._sizes_path = out_file + ".sizes"
        self._sizes_file = open(self._sizes_path, "wb")
        self._count = 0

    def add_item(self, tensor):
        array = np.asarray(tensor.numpy())
        self.add_items(array, np.array([array.size], dtype=np.int32))

    def add_items(self, flat: np.ndarray, sizes: np.ndarray):
        """Append items given as their concatenation and their sizes."""
        self._data_file.write(np.ascontiguousarray(flat, dtype=self._dtype).tobytes())
        self._sizes_file.write(np.ascontiguousarray(sizes, dtype=np.int32).tobytes())
        self._count += len(sizes)

    def __len__(self):
        return self._count

    def finalize(self, index_file: str):
        self._data_file.close()
        self._sizes_file.close()
        itemsize = np.dtype(self._dtype).itemsize
        with open(index_file, "wb") as index, open(self._sizes_path, "rb") as sizes:
            index.write(MMapIndexedDataset.Index._HDR_MAGIC)
            index.write(struct.pack("<Q", 1))
            index.write(struct.pack("<B", _dtype_header_code(self._dtype)))
            index.write(struct.pack("<Q", self._count))
            for block in iter(lambda: sizes.read(4 * _BLOCK), b""):
                index.write(block)
            sizes.seek(0)
            address = 0
            for block in iter(lambda: sizes.read(4 * _BLOCK), b""):
                lengths = np.frombuffer(block, dtype=np.int32).astype(np.int64) * itemsize
                pointers = np.cumsum(lengths) - lengths + address
                index.write(pointers.tobytes())
                address += int(lengths.sum())
        os.remove(self._sizes_path)

    def discard(self):
        """Close and remove what was written (an error before `finalize`)."""
        for f in (self._data_file, self._sizes_file):
            f.close()
        for path in (self._data_file.name, self._sizes_path):
            if os.path.exists(path):
                os.remove(path)
