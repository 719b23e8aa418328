"""`TokenTaskData` and `SpanTaskData`: token-classification and span-QA examples.

They stand beside `keras_albert.training.task_records.TaskData` (texts with one label
each) and answer to the same calls: `task`, `len`, `num_segments`, `num_classes`,
`label_names`, `subset`, `split`. `token_span_files` reads them from JSONL files;
`task_dataset` turns them into batches (via `token_span_encoding`).

Example:

>>> data = TokenTaskData([["EU", "rejects", "it"], ["Peter"]], [[1, 0, 0], [2]],
...                      label_names=["O", "B-ORG", "B-PER"])
>>> data.task, len(data), data.num_classes
('token', 2, 3)
>>> squad = SpanTaskData(["Who?"], ["Ada wrote it."], answer_starts=[0],
...                      answer_texts=["Ada"])
>>> squad.answer_ends.tolist()
[3]
"""

import dataclasses
import typing

import numpy as np

from keras_albert.training.task_records import holdout_split


@dataclasses.dataclass
class TokenTaskData:
    """Words with one tag each (CoNLL-style NER, POS tagging).

    Attributes:
        words: one list of word strings per example.
        tags: one int array of tag ids per example, as long as its words (or None
            for unlabelled examples).
        label_names: the tag names by id, when known.
    """

    words: list
    tags: list = None
    label_names: list = None
    task: typing.ClassVar[str] = "token"
    num_segments: typing.ClassVar[int] = 1

    def __post_init__(self):
        self.words = [list(words) for words in self.words]
        for index, words in enumerate(self.words):
            if not all(isinstance(word, str) for word in words):
                raise ValueError(f"Example {index}: every word must be a string.")
        if self.tags is not None:
            self.tags = [np.asarray(tags, np.int32).reshape(-1) for tags in self.tags]
            if len(self.tags) != len(self.words):
                raise ValueError(f"{len(self.tags)} tag lists for {len(self.words)} examples.")
            for index, (words, tags) in enumerate(zip(self.words, self.tags)):
                if len(words) != len(tags):
                    raise ValueError(
                        f"Example {index}: {len(tags)} tags for {len(words)} words.")
                if len(tags) and tags.min() < 0:
                    raise ValueError(f"Example {index}: negative tag id {tags.min()}.")
        if self.label_names is not None:
            self.label_names = list(self.label_names)

    def __len__(self):
        return len(self.words)

    @property
    def num_classes(self):
        """The number of tags: `len(label_names)`, else the largest tag id + 1."""
        if self.label_names is not None:
            return len(self.label_names)
        if not self.tags or not any(len(tags) for tags in self.tags):
            raise ValueError("The number of tags is unknown: no tags, no label_names.")
        return int(max(tags.max() for tags in self.tags if len(tags))) + 1

    def subset(self, indices):
        """The examples at `indices` (in that order), as a new `TokenTaskData`."""
        indices = [int(i) for i in np.asarray(indices, np.int64)]
        tags = None if self.tags is None else [self.tags[i] for i in indices]
        return TokenTaskData([self.words[i] for i in indices], tags, self.label_names)

    def split(self, fraction, seed=0):
        """`(rest, held_out)`, as `TaskData.split`."""
        return holdout_split(self, fraction, seed)


@dataclasses.dataclass
class SpanTaskData:
    """Questions with a context each and, to train on, the answer's place in it (SQuAD).

    Attributes:
        questions, contexts: equally long lists of strings.
        answer_starts: int [N], the character where each answer starts in its context,
            -1 for a question without an answer (SQuAD 2.0); None for unlabelled data.
        answer_texts: the answers' texts (their lengths give `answer_ends`).
    """

    questions: list
    contexts: list
    answer_starts: np.ndarray = None
    answer_texts: list = None
    task: typing.ClassVar[str] = "span"
    num_segments: typing.ClassVar[int] = 2
    label_names: typing.ClassVar[list] = None
    num_classes: typing.ClassVar[int] = None  # a span model has no classes

    def __post_init__(self):
        self.questions, self.contexts = list(self.questions), list(self.contexts)
        if len(self.questions) != len(self.contexts):
            raise ValueError(f"{len(self.questions)} questions for {len(self.contexts)} "
                             "contexts.")
        if (self.answer_starts is None) != (self.answer_texts is None):
            raise ValueError("Give both `answer_starts` and `answer_texts`, or neither.")
        if self.answer_starts is not None:
            self.answer_starts = np.asarray(self.answer_starts, np.int64).reshape(-1)
            self.answer_texts = list(self.answer_texts)
            if not len(self.answer_starts) == len(self.answer_texts) == len(self.contexts):
                raise ValueError(f"{len(self.answer_starts)} answers for "
                                 f"{len(self.contexts)} contexts.")
            for index, (start, end, context) in enumerate(
                    zip(self.answer_starts, self.answer_ends, self.contexts)):
                if start >= 0 and end > len(context):
                    raise ValueError(f"Example {index}: the answer ends at character {end}, "
                                     f"past its context ({len(context)} characters).")

    def __len__(self):
        return len(self.questions)

    @property
    def answer_ends(self):
        """int [N]: the character after each answer (-1 without an answer)."""
        lengths = np.asarray([len(text) for text in self.answer_texts], np.int64)
        return np.where(self.answer_starts >= 0, self.answer_starts + lengths, -1)

    def subset(self, indices):
        """The examples at `indices` (in that order), as a new `SpanTaskData`."""
        indices = [int(i) for i in np.asarray(indices, np.int64)]
        starts = texts = None
        if self.answer_starts is not None:
            starts = self.answer_starts[indices]
            texts = [self.answer_texts[i] for i in indices]
        return SpanTaskData([self.questions[i] for i in indices],
                            [self.contexts[i] for i in indices], starts, texts)

    def split(self, fraction, seed=0):
        """`(rest, held_out)`, as `TaskData.split`."""
        return holdout_split(self, fraction, seed)
