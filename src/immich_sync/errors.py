"""The errors a user can meet, each a one-line message; `exit_code` is what the command returns."""


class ImmichSyncError(Exception):
    exit_code = 1


class BadInput(ImmichSyncError):
    """Bad arguments or input: a date, a folder, an album id, a configuration value."""

    exit_code = 2


class CacheFileError(BadInput):
    """The cache file is not one this version can read; it is never overwritten."""


class CacheLocked(ImmichSyncError):
    """Another run holds the cache."""


class ImmichError(ImmichSyncError):
    """The server could not be reached, refused the key, or kept failing."""


class ApiKeyRejected(ImmichError):
    pass


class ServerUnreachable(ImmichError):
    pass


class AlbumNotFound(BadInput):
    pass


class ServerTooNew(ImmichError):
    """The server is newer than any version this immich-sync knows, and refused a request shape."""


class OtherAccount(BadInput):
    """The cache was made for another user (another key or another server): nothing is changed."""
