"""Named reasons a file or a set cannot be used. Their message is what a person reads in the ledger."""


class FlatQCError(Exception):
    """Base: a file or set that cannot be processed, with a reason a person understands."""


class NotFits(FlatQCError):
    """Not a FITS file at all (text, empty, wrong magic)."""


class IncompleteFile(FlatQCError):
    """A FITS file whose bytes end before its headers say (truncated or still being written)."""


class CorruptFile(FlatQCError):
    """A FITS file that astropy cannot parse."""


class NotAFlatProduct(FlatQCError):
    """A readable FITS file that is not a flat raw, master or BPM of a known instrument (e.g. a dark)."""


class MissingKeyword(FlatQCError):
    """A header lacks a keyword the QC needs."""


class BadLayout(FlatQCError):
    """Extensions missing or of the wrong shape."""


class InconsistentSet(FlatQCError):
    """The members of a set disagree (DIT, NDIT, window, setting)."""


class IncompleteSet(FlatQCError):
    """Master, BPM or raws of a set are missing."""


class BadHeader(FlatQCError):
    """A keyword the QC needs holds a value of the wrong type or outside its range (e.g. DIT <= 0, NDIT < 1)."""


class BadData(FlatQCError):
    """Pixels that cannot give meaningful QC1 values: no finite pixel, a constant raw, inf, a master median of 0,
    BPM values the profile does not allow. The message names the file, the detector and the value."""
