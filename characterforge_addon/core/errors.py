"""The one error type shown to users: its message says what is wrong, where, and how to fix it."""


class UserError(Exception):
    pass
