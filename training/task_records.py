"""`TaskData`: labelled texts for fine-tuning, as the task loaders return them.

`task_files.load_task_file` and `tfds_tasks.load_tfds` build one; `task_dataset`
turns one into batches. Token-classification and span-QA examples have their own
records beside it, in `token_span_records` (they share `holdout_split`).

Example:

>>> data = TaskData((["good", "bad", "fine"],), [1, 0, 1])
>>> data.num_classes, data.num_segments
(2, 1)
>>> train, held_out = data.split(1 / 3)
>>> len(train), len(held_out)
(2, 1)
"""

import dataclasses

import numpy as np

TASKS = ("classification", "regression", "multilabel")

@dataclasses.dataclass
class TaskData:
    """Labelled texts for fine-tuning.

    Attributes:
        texts: a tuple of one list of strings (single texts) or two equally long lists
            (text pairs).
        labels: int class ids [N] (classification), float scores [N] (regression),
            float multi-hot [N, C] (multilabel), or None for unlabelled texts.
        task: `"classification"`, `"regression"` or `"multilabel"`.
        label_names: class names by id (classification / multilabel) when known.
    """

    texts: tuple
    labels: np.ndarray
    task: str = "classification"
    label_names: list = None

    def __post_init__(self):
        texts = self.texts
        if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)):
            raise TypeError("`texts` must be a tuple of one or two lists of strings.")
        if texts and isinstance(texts[0], str):  # one plain list of strings
            texts = (texts,)
        if not 1 <= len(texts) <= 2:
            raise ValueError(f"`texts` holds one or two text columns; got {len(texts)}.")
        self.texts = tuple(list(column) for column in texts)
        if len(self.texts) == 2 and len(self.texts[0]) != len(self.texts[1]):
            raise ValueError(
                f"The two text columns differ in length: {len(self.texts[0])} and "
                f"{len(self.texts[1])}."
            )
        if self.task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}; got {self.task!r}.")
        if self.labels is not None:
            dtype = np.int32 if self.task == "classification" else np.float32
            self.labels = np.asarray(self.labels, dtype)
            expected_rank = 2 if self.task == "multilabel" else 1
            if self.labels.ndim != expected_rank or len(self.labels) != len(self.texts[0]):
                raise ValueError(
                    f"{self.task} labels must have shape "
                    f"{'[N, C]' if expected_rank == 2 else '[N]'} with N = "
                    f"{len(self.texts[0])} texts; got shape {self.labels.shape}."
                )
        if self.label_names is not None:
            self.label_names = list(self.label_names)

    def __len__(self):
        return len(self.texts[0])

    @property
    def num_segments(self):
        """1 for single texts, 2 for pairs."""
        return len(self.texts)

    @property
    def num_classes(self):
        """Output units a model needs: classes, labels (multilabel), or 1 (regression)."""
        if self.task == "regression":
            return 1
        if self.task == "multilabel":
            if self.labels is not None:
                return int(self.labels.shape[1])
            return len(self.label_names)
        if self.label_names is not None:
            return len(self.label_names)
        if self.labels is None or not len(self.labels):
            raise ValueError("The number of classes is unknown: no labels, no label_names.")
        return int(self.labels.max()) + 1

    def subset(self, indices):
        """The examples at `indices` (in that order), as a new `TaskData`."""
        indices = np.asarray(indices, np.int64)
        texts = tuple([column[i] for i in indices] for column in self.texts)
        labels = None if self.labels is None else self.labels[indices]
        return TaskData(texts, labels, self.task, self.label_names)

    def split(self, fraction, seed=0):
        """A deterministic random holdout: returns `(rest, held_out)`.

        `held_out` has `round(fraction * len(self))` examples chosen at random with
        `seed`; both parts keep the original order of their examples.
        """
        return holdout_split(self, fraction, seed)


def holdout_split(data, fraction, seed=0):
    """`(rest, held_out)` of any example container with `len` and `subset(indices)`:
    `round(fraction * len(data))` examples held out at random with `seed`, both parts
    in their original order (`TaskData.split`, and the token / span data's)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"`fraction` must be in (0, 1); got {fraction!r}.")
    count = int(round(fraction * len(data)))
    if not 0 < count < len(data):
        raise ValueError(
            f"fraction={fraction} of {len(data)} examples leaves an empty part."
        )
    permutation = np.random.default_rng(seed).permutation(len(data))
    return data.subset(np.sort(permutation[count:])), data.subset(np.sort(permutation[:count]))
