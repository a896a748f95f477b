"""One exception type for every problem a user can fix (bad input, missing model, bad option).

The CLI prints it as one line; the Slicer logic shows it in a message box. Anything else is a bug.
"""


class LungSegError(Exception):
    """A problem with the input or the options, explained in words the user can act on."""


class CancelledError(LungSegError):
    """The progress callback asked to stop."""


def os_error_message(e: OSError) -> str:
    """An OSError in words, without a traceback: 'No space left on device: /out/x.nii.gz'."""
    text = e.strerror or str(e) or type(e).__name__
    return f"{text}: {e.filename}" if getattr(e, "filename", None) else text
