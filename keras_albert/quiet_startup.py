"""TensorFlow's start-up lines kept from the user of the command line, unless asked.

Importing TensorFlow prints C++ log lines straight to file descriptor 2 ("All log
messages before absl::InitializeLog() ...", oneDNN and CUDA notices) before
`TF_CPP_MIN_LOG_LEVEL` takes effect, and the first operation on a machine without a
GPU logs "failed call to cuInit" as an error. To a new user they read as failures.
The command line imports TensorFlow inside `quiet_tensorflow_startup()`: the lines
go to a scratch file, shown only if the import itself fails, and later C++ logs
are filtered at level 3, errors included (the cuInit line is one): a failure still
ends the command with its Python error, and `--verbose` (or the user's own
`TF_CPP_MIN_LOG_LEVEL`) shows every C++ line, as without us.
"""

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def quiet_tensorflow_startup(verbose=False):
    """Runs the block (which imports TensorFlow) with C++ start-up lines held back.

    >>> with quiet_tensorflow_startup():
    ...     import json  # any import; TensorFlow's lines would be held back here
    """
    if verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to protect
        yield
        return
    try:
        scratch = tempfile.TemporaryFile()
    except OSError:  # no writable temporary folder: let the lines through
        os.close(saved)
        yield
        return
    with scratch:
        sys.stderr.flush()
        os.dup2(scratch.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            scratch.seek(0)
            os.write(2, scratch.read())  # the lines may explain the failure
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
