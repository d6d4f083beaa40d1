"""The base class of every error caused by the user's input (files, lists, flags).

Command-line front ends print these as one clear message and exit with status 2; anything
else is a bug and keeps its traceback.
"""


class UserInputError(ValueError):
    """Bad input: the message names the file or flag, what was expected and the fix."""
