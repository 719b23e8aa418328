"""Text corpora for pretraining, in the format of BERT/ALBERT `create_pretraining_data`.

The format: plain UTF-8 text (optionally gzip-compressed, by a `.gz` suffix), one
sentence (or line) per line, documents separated by blank lines. A document is handed
around as a list of non-empty, stripped lines.

- `iter_documents(paths)` streams documents from such files, one line at a time.
- `default_corpus_documents()` is the offline demo corpus: text the Python
  installation itself ships (the `pydoc_data` help topics and the docstrings of a
  fixed list of standard-library modules). On CPython 3.11.7 it is 4,648 documents,
  16,838 lines and 225,722 whitespace-separated words (65,501 of them from the 79
  pydoc topics); other Python versions give somewhat different counts.
- `write_corpus_file(documents, path)` writes documents in the same format (to cache
  a corpus, or to hand it to file-based tools such as ALBERT's own script).
"""

import gzip
import importlib
import inspect
import os
import re

__all__ = [
    "DEFAULT_CORPUS_MODULES",
    "default_corpus_documents",
    "iter_documents",
    "write_corpus_file",
]

# Standard-library modules that are safe and fast to import (no GUI, no terminal or
# interpreter side effects, no deprecation warnings; about 0.2 s for all of them).
# Fixed order, so the default corpus is the same on every run. Most are pure Python;
# a few C modules (builtins, sys, math, ...) are here for their rich docstrings. A
# module that fails to import is skipped.
DEFAULT_CORPUS_MODULES = (
    # The ~40 everyday modules.
    "json", "collections", "argparse", "textwrap", "functools", "itertools",
    "pathlib", "csv", "email", "http.client", "urllib.parse", "logging", "unittest",
    "datetime", "decimal", "fractions", "statistics", "random", "string", "re",
    "difflib", "heapq", "bisect", "shutil", "tempfile", "zipfile", "tarfile", "gzip",
    "sqlite3", "threading", "queue", "subprocess", "socket", "asyncio", "inspect",
    "typing", "dataclasses", "enum", "contextlib", "abc",
    # More, to reach a couple of hundred thousand words.
    "email.message", "email.utils", "email.headerregistry", "email.policy",
    "email.parser", "email.generator", "email.charset", "urllib.request",
    "urllib.robotparser", "http.server", "http.cookiejar", "http.cookies",
    "xmlrpc.client", "xmlrpc.server", "xml.dom.minidom", "xml.etree.ElementTree",
    "xml.sax", "xml.sax.handler", "html.parser", "logging.handlers", "logging.config",
    "unittest.mock", "concurrent.futures", "concurrent.futures.process",
    "multiprocessing", "multiprocessing.managers", "asyncio.base_events",
    "collections.abc", "importlib.metadata", "importlib.abc", "os", "io", "pickle",
    "calendar", "configparser", "pprint", "optparse", "smtplib", "ftplib", "imaplib",
    "poplib", "mailbox", "operator", "copy", "weakref", "traceback", "warnings",
    "doctest", "pdb", "codecs", "locale", "ipaddress", "ast", "tokenize", "dis",
    "pydoc", "sched", "selectors", "ssl", "uuid", "base64", "binascii", "hashlib",
    "hmac", "secrets", "struct", "array", "numbers", "math", "cmath", "time",
    "timeit", "trace", "cProfile", "profile", "pstats", "glob", "fnmatch", "filecmp",
    "fileinput", "shlex", "getopt", "gettext", "platform", "sysconfig", "zipimport",
    "pkgutil", "modulefinder", "runpy", "code", "codeop", "cmd", "symtable", "pyclbr",
    "py_compile", "compileall", "lzma", "bz2", "zlib", "plistlib", "mimetypes",
    "quopri", "wave", "colorsys", "graphlib", "contextvars", "types", "shelve", "dbm",
    "reprlib", "unicodedata", "signal", "mmap", "ctypes", "venv", "zipapp",
    "wsgiref.handlers", "socketserver", "json.decoder", "tracemalloc", "gc",
    "builtins", "sys",
)

# A sentence ends at ., ! or ? followed by whitespace and a capital, digit or quote.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_WHITESPACE = re.compile(r"\s+")


def _as_path_list(paths):
    if isinstance(paths, (str, bytes, os.PathLike)):
        return [os.fspath(paths)]
    paths = [os.fspath(path) for path in paths]
    if not paths:
        raise ValueError("`paths` is empty: pass one corpus file or a list of them.")
    return paths


def _open_text(path):
    if str(path).endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def iter_documents(paths):
    """Streams documents from corpus files; returns a generator.

    Args:
        paths: one path or a list of paths to text files (`.gz` files are read
            through gzip). One sentence/line per line, documents separated by blank
            lines, as BERT/ALBERT `create_pretraining_data` reads them. The files are
            read line by line, never whole; a document ends at a blank line or at the
            end of a file (one document at a time is held in memory).

    Yields:
        Each document as a list of non-empty, stripped lines.

    Raises:
        FileNotFoundError: a file does not exist (checked when called, before any
            document is read).
        ValueError: the files hold no text at all (raised at the end of iteration).
    """
    paths = _as_path_list(paths)
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Corpus file not found: '{path}'")
    return _document_generator(paths)


def _document_generator(paths):
    count = 0
    for path in paths:
        with _open_text(path) as handle:
            document = []
            for line in handle:
                line = line.strip()
                if line:
                    document.append(line)
                elif document:
                    count += 1
                    yield document
                    document = []
            if document:
                count += 1
                yield document
    if count == 0:
        raise ValueError(f"The corpus {paths} has no text: every line is blank.")


def _text_to_lines(text):
    """Splits text into lines: paragraphs (blank-line separated), then sentences."""
    lines = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = _WHITESPACE.sub(" ", paragraph).strip()
        if paragraph:
            lines.extend(s for s in _SENTENCE_END.split(paragraph) if s.strip())
    return lines


def _own_docstring(obj):
    """The object's own docstring (not one a class inherits), cleaned, or None."""
    if isinstance(obj, type):
        doc = obj.__dict__.get("__doc__")
    else:
        doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def _defined_in(obj, module):
    """Whether `obj` belongs to `module`: defined there, in a submodule of the package,
    or in a private (C) helper module (`_collections`, `_socket`, ...)."""
    owner = getattr(obj, "__module__", None)
    if not isinstance(owner, str):
        return False
    return owner == module.__name__ or owner.startswith((module.__name__ + ".", "_"))


def _module_docstrings(module):
    """The docstrings of a module, its public classes and functions, and their methods."""
    docs = [_own_docstring(module)]
    for name in sorted(vars(module)):
        obj = vars(module)[name]
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        if not _defined_in(obj, module):
            continue  # imported from another module; counted there
        docs.append(_own_docstring(obj))
        if inspect.isclass(obj):
            for member_name in sorted(vars(obj)):
                member = vars(obj)[member_name]
                if member_name.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if inspect.isroutine(member) or inspect.isdatadescriptor(member):
                    docs.append(_own_docstring(member))
    return [doc for doc in docs if doc]


def default_corpus_documents():
    """The offline demo corpus: text shipped with the Python installation.

    Documents, in a fixed order: each `pydoc_data.topics.topics` entry (sorted by
    name; the text of `help("TOPIC")`), then the docstrings of each module in
    `DEFAULT_CORPUS_MODULES` (a module that fails to import is skipped), of its public
    classes and functions defined there (sorted by name) and of those classes' public
    methods and properties. Each docstring or topic is one document; its paragraphs
    are split into sentences, one per line. Identical docstrings are kept once.

    Size on CPython 3.11.7: 4,648 documents, 16,838 lines (sentences), 225,722 words
    (counted as whitespace-separated tokens; 65,501 from the pydoc topics), 1.4 MB of
    text; it takes about 0.2 s to build. It is returned as a list, so it can be
    re-read every epoch.

    Returns:
        A list of documents, each a list of non-empty lines.
    """
    from pydoc_data import topics

    texts = [topics.topics[name] for name in sorted(topics.topics)]
    for module_name in DEFAULT_CORPUS_MODULES:
        try:
            module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001 - a missing optional module is skipped
            continue
        texts.extend(_module_docstrings(module))
    documents = []
    seen = set()
    for text in texts:
        if text in seen:
            continue
        seen.add(text)
        lines = _text_to_lines(text)
        if lines:
            documents.append(lines)
    return documents


def write_corpus_file(documents, path):
    """Writes documents as one line per line, documents separated by a blank line.

    A `path` ending in `.gz` is gzip-compressed. Newlines inside a line become
    spaces and empty lines are dropped (a blank line would split the document);
    documents left with no line are skipped. The file is written to a temporary name
    and renamed, so a reader never sees a half-written file.

    Returns:
        The number of documents written.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}"
    count = 0
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(temporary, "wt", encoding="utf-8") as handle:
            for document in documents:
                if isinstance(document, str):
                    raise TypeError(
                        "Each document must be a list of lines, not a string."
                    )
                lines = [_WHITESPACE.sub(" ", str(line)).strip() for line in document]
                lines = [line for line in lines if line]
                if not lines:
                    continue
                if count:
                    handle.write("\n")
                handle.write("".join(line + "\n" for line in lines))
                count += 1
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return count
