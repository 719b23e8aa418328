"""Length buckets: the few padded widths a length-bucketed dataset pads batches to.

A compiled (XLA) training step is traced once per batch shape, so `task_dataset`
pads each batch to the smallest of a few boundaries that holds its longest row:
`choose_bucket_boundaries` picks them from the length distribution,
`resolve_bucket_boundaries` checks what a caller asked for, and `bucket_plan` forms
the batches `tf.data.Dataset.group_by_window` would form from a fixed order.

Example:

>>> choose_bucket_boundaries([5, 6, 7, 30, 31, 60], seq_length=64, max_shapes=3)
[8, 32, 64]
>>> bucket_plan(np.array([0, 1, 0, 0, 1]), batch_size=2, drop_remainder=False)
[[0, 2], [1, 4], [3]]
"""

import numpy as np


def choose_bucket_boundaries(lengths, seq_length, max_shapes=8, multiple=8):
    """At most `max_shapes` padded widths for `lengths`, the last one `seq_length`.

    The other boundaries are multiples of `multiple` picked by dynamic programming to
    minimise the padded tokens when every example is padded to the smallest boundary
    that holds it (quantiles of the lengths, but optimal).
    """
    if max_shapes < 1:
        raise ValueError(f"`max_shapes` must be >= 1; got {max_shapes}.")
    lengths = np.asarray(lengths, np.int64)
    candidates = np.arange(multiple, seq_length, multiple, dtype=np.int64)
    candidates = np.append(candidates, seq_length)
    # Examples per candidate: each goes to the smallest candidate that holds it.
    counts = np.bincount(np.searchsorted(candidates, lengths, side="left"),
                         minlength=len(candidates)).astype(np.float64)
    used = np.flatnonzero(counts)
    if max_shapes == 1 or not len(used):
        return [int(seq_length)]
    # Only candidates some example maps to are worth a boundary, plus seq_length last.
    keep = np.unique(np.append(used, len(candidates) - 1))
    widths = candidates[keep].astype(np.float64)
    counts = counts[keep]  # the other candidates hold no example
    n = len(widths)
    prefix = np.concatenate([[0.0], np.cumsum(counts)])
    # cost[k][j]: least padded tokens covering slots 0..j with k + 1 boundaries, last at j.
    steps = min(max_shapes, n)
    cost = np.full((steps, n), np.inf)
    parent = np.full((steps, n), -1, np.int64)
    cost[0] = widths * prefix[1:]
    for k in range(1, steps):
        for j in range(k, n):
            options = cost[k - 1, :j] + widths[j] * (prefix[j + 1] - prefix[1:j + 1])
            best = int(np.argmin(options))
            cost[k, j], parent[k, j] = options[best], best
    k = int(np.argmin(cost[:, n - 1]))
    chosen, j = [], n - 1
    while j >= 0 and k >= 0:
        chosen.append(int(widths[j]))
        j, k = parent[k, j], k - 1
    return sorted(chosen)


def resolve_bucket_boundaries(bucket_boundaries, lengths, seq_length, max_shapes=8):
    """The sorted padded widths for `task_dataset`'s `bucket_boundaries` argument.

    `"auto"` chooses at most `max_shapes` from `lengths`; None pads every batch to
    `seq_length`; a list is checked and gets `seq_length` appended if missing.
    """
    if bucket_boundaries is None:
        return [seq_length]
    if isinstance(bucket_boundaries, str):
        if bucket_boundaries != "auto":
            raise ValueError(f"`bucket_boundaries` must be 'auto', None or a list; got "
                             f"{bucket_boundaries!r}.")
        return choose_bucket_boundaries(lengths, seq_length, max_shapes)
    return _check_boundaries(bucket_boundaries, seq_length)


def _check_boundaries(bucket_boundaries, seq_length):
    boundaries = sorted({int(b) for b in bucket_boundaries})
    if not boundaries or boundaries[0] < 2 or boundaries[-1] > seq_length:
        raise ValueError(
            f"`bucket_boundaries` must be ints in [2, seq_length={seq_length}]; got "
            f"{list(bucket_boundaries)}."
        )
    if boundaries[-1] != seq_length:
        boundaries.append(seq_length)
    return boundaries


def bucket_plan(buckets, batch_size, drop_remainder):
    """Batches as `tf.data.Dataset.group_by_window` forms them from the input order.

    `buckets[i]` is example i's bucket id; each batch is a list of example indices.

    Examples go to their bucket's queue in order; a full queue becomes a batch; at
    the end the partial queues follow in bucket order (or are dropped).
    """
    queues, batches = {}, []
    for index, bucket in enumerate(buckets.tolist()):
        queue = queues.setdefault(bucket, [])
        queue.append(index)
        if len(queue) == batch_size:
            batches.append(queue)
            queues[bucket] = []
    if not drop_remainder:
        batches.extend(queues[b] for b in sorted(queues) if queues[b])
    return batches
