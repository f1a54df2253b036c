"""One spelling for every drr.v1 enum value, derived from the proto
descriptors by the rule drrctl uses (wire/enum_names.h): the value's name
without the prefix its enum's values share, in lower case
(RENDERER_KIND_SIDDON -> "siddon", OUTPUT_LINE_INTEGRAL -> "line_integral")."""

from __future__ import annotations

import os

from google.protobuf.descriptor import EnumDescriptor


def spellings(enum: EnumDescriptor) -> dict[str, str]:
    """{spelling: value name} of every value of ``enum`` but the UNSPECIFIED
    one, in the order the proto declares them."""
    names = [value.name for value in enum.values]
    prefix = os.path.commonprefix(names)
    prefix = prefix[: prefix.rfind("_") + 1]
    return {value.name[len(prefix):].lower(): value.name for value in enum.values
            if not (value.number == 0 and value.name.endswith("_UNSPECIFIED"))}


def pick(enum: EnumDescriptor, spelling: str | None, what: str) -> str | None:
    """The name of the value of ``enum`` spelled ``spelling`` (any case), as
    message constructors take it; None (the field left unset) for None."""
    if spelling is None:
        return None
    table = spellings(enum)
    name = table.get(spelling.lower())
    if name is None:
        raise ValueError(f"{what} must be one of {', '.join(table)}, not {spelling!r}")
    return name
