"""Declared fields: each describes one JSON value (its type, default, limits and what it is
for), and from that one description come both the check a job spec goes through and the JSON
Schema the backend publishes, so the two cannot drift.

Stdlib only: Blender's Python runs the very same checks as the backend.
"""

import math
import re

from ..errors import UserError

MISSING = object()  # no default: the field must be given
NAME_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


class JobSpecError(UserError):
    def __init__(self, field, message, fix=""):
        self.field, self.fix = field, fix
        super().__init__(f"{field}: {message}" + (f" ({fix})" if fix else ""))


def _described(schema, field):
    if field.doc:
        schema["description"] = field.doc
    if field.default is not MISSING and field.default is not None:
        schema["default"] = field.default
    return schema


class Field:
    """A value of a job spec. `default` MISSING: required; `omit`: left out of the checked spec
    when absent (or null)."""

    def __init__(self, doc="", default=MISSING, omit=False, fix=""):
        self.doc, self.default, self.omit, self.fix = doc, default, omit, fix

    def check(self, value, field, ctx):
        raise NotImplementedError

    def schema(self):
        raise NotImplementedError


class Integer(Field):
    def __init__(self, lo, hi, doc="", default=MISSING, multiple_of=1, **kw):
        super().__init__(doc, default, **kw)
        self.lo, self.hi, self.multiple_of = lo, hi, multiple_of

    def check(self, value, field, ctx):
        value = _finite(value, field)
        if value != int(value):
            raise JobSpecError(field, f"must be a whole number, got {value!r}")
        value = _within(int(value), self.lo, self.hi, field)
        if value % self.multiple_of:
            below = value - value % self.multiple_of
            raise JobSpecError(field, f"{value} is not a multiple of {self.multiple_of}",
                               f"use {below} or {below + self.multiple_of}")
        return value

    def schema(self):
        out = {"type": "integer", "minimum": self.lo, "maximum": self.hi}
        if self.multiple_of > 1:
            out["multipleOf"] = self.multiple_of
        return _described(out, self)


class Number(Field):
    """`least`: a strength where 0 turns a pass off; between 0 and `least` it would change
    nothing yet need more steps than any job may run."""

    def __init__(self, lo, hi, doc="", default=MISSING, least=None, **kw):
        super().__init__(doc, default, **kw)
        self.lo, self.hi, self.least = lo, hi, least

    def check(self, value, field, ctx):
        value = float(_within(_finite(value, field), self.lo, self.hi, field))
        if self.least and 0 < value < self.least:
            raise JobSpecError(field, f"{value!r} is too small to change anything",
                               f"use 0 to turn this pass off, or at least {self.least}")
        return value

    def schema(self):
        if self.least:
            return _described({"anyOf": [{"const": 0}, {"type": "number", "minimum": self.least,
                                                         "maximum": self.hi}]}, self)
        return _described({"type": "number", "minimum": self.lo, "maximum": self.hi}, self)


def _finite(value, field):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JobSpecError(field, f"must be a number, got {_show(value)}")
    # an int from JSON may be far beyond float range: compare it as an int, never convert first
    if isinstance(value, float) and not math.isfinite(value):
        raise JobSpecError(field, f"must be finite, got {value!r}")
    return value


def _within(value, lo, hi, field):
    if not lo <= value <= hi:
        raise JobSpecError(field, f"must be between {lo} and {hi}, got {_show(value)}")
    return value


def _show(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Text(Field):
    def __init__(self, max_chars, doc="", default="", **kw):
        super().__init__(doc, default, **kw)
        self.max_chars = max_chars

    def check(self, value, field, ctx):
        if not isinstance(value, str):
            raise JobSpecError(field, f"must be text, got {type(value).__name__}")
        if len(value) > self.max_chars:
            raise JobSpecError(field, f"is {len(value)} characters long; the limit is {self.max_chars}")
        encodable(value, field)
        return value

    def schema(self):
        return _described({"type": "string", "maxLength": self.max_chars}, self)


def encodable(value, field):
    """Valid JSON may still carry a lone UTF-16 surrogate, which no tokenizer can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise JobSpecError(field, f"holds a character that is not valid Unicode text at position {exc.start} "
                                  f"({value[exc.start]!r}, half of a surrogate pair)",
                           "send the text as UTF-8; remove or replace that character") from None


class Flag(Field):
    def check(self, value, field, ctx):
        if not isinstance(value, bool):
            raise JobSpecError(field, f"must be true or false, got {_show(value)}")
        return value

    def schema(self):
        return _described({"type": "boolean"}, self)


class Choice(Field):
    def __init__(self, values, doc="", default=MISSING, **kw):
        super().__init__(doc, default, **kw)
        self.values = tuple(values)

    def check(self, value, field, ctx):
        if value not in self.values or isinstance(value, bool):
            raise JobSpecError(field, f"must be one of {', '.join(map(str, self.values))}, got {_show(value)}",
                               self.fix)
        return value

    def schema(self):
        return _described({"enum": list(self.values)}, self)


class Name(Field):
    """A file-safe name: letters, digits, '_', '-', '.', no path separators, no leading dot, no '..'."""

    def check(self, value, field, ctx):
        return safe_name(value, field)

    def schema(self):
        return _described({"type": "string", "pattern": NAME_PATTERN, "maxLength": 64}, self)


class Pattern(Field):
    """Text of one shape (a trigger word, a hash), given as a regular expression."""

    def __init__(self, pattern, max_chars, what, doc="", **kw):
        super().__init__(doc, **kw)
        self.pattern, self.max_chars, self.what, self._regex = pattern, max_chars, what, re.compile(pattern)

    def check(self, value, field, ctx):
        if not isinstance(value, str) or len(value) > self.max_chars or not self._regex.match(value):
            raise JobSpecError(field, f"{_show(value)} is not {self.what}", self.fix)
        return value

    def schema(self):
        return _described({"type": "string", "pattern": self.pattern, "maxLength": self.max_chars}, self)


def safe_name(value, field):
    if not isinstance(value, str) or not _NAME.match(value):
        raise JobSpecError(field, f"{_show(value)} is not a plain file name",
                           "use letters, digits, '_', '-' and '.', at most 64 characters, no folders")
    return value


PICTURE_REF = "sha256:"  # a picture given by hash: "sha256:<64 hex>" of a PNG the backend keeps
PICTURE_REF_PATTERN = r"^sha256:[0-9a-f]{64}$"
_PICTURE_REF = re.compile(PICTURE_REF_PATTERN)


def picture_ref(value):
    """The SHA-256 a picture value names ("sha256:<hex>"), or None for an inline base64 PNG."""
    return value[len(PICTURE_REF):] if isinstance(value, str) and value.startswith(PICTURE_REF) else None


class Image(Field):
    """A picture as base64 PNG (decoded and checked by the backend before the job is queued),
    or by hash: "sha256:<hex>" of a PNG the backend keeps (sent once with PUT /pictures/<hex>;
    base64 has no ':', so the two cannot be confused)."""

    def __init__(self, max_bytes, doc="", **kw):
        super().__init__(doc, **kw)
        self.max_bytes = max_bytes

    def check(self, value, field, ctx):
        if not isinstance(value, str) or not value:
            raise JobSpecError(field, "must be a base64 PNG, or sha256:<hex> of a picture the backend keeps")
        if value.startswith(PICTURE_REF):
            if not _PICTURE_REF.match(value):
                raise JobSpecError(field, f"{_show(value)} is not sha256: and a SHA-256 in lowercase hex",
                                   "name a picture by the SHA-256 of its PNG bytes, or send the PNG as base64")
            return value
        if len(value) * 3 // 4 > self.max_bytes:
            raise JobSpecError(field, f"is over {self.max_bytes // 2**20} MiB", "send a smaller picture")
        return value

    def schema(self):
        inline = _described({"type": "string", "minLength": 1, "maxLength": self.max_bytes * 4 // 3 + 4,
                             "contentEncoding": "base64", "contentMediaType": "image/png"}, self)
        by_hash = {"type": "string", "pattern": PICTURE_REF_PATTERN,
                   "description": "the picture by hash: sha256:<hex> of a PNG sent before with PUT /pictures/<hex>"}
        return {"anyOf": [inline, by_hash], **({"description": self.doc} if self.doc else {})}


class Box(Field):
    """[x0, y0, x1, y1] in whole pixels of the job's image (x1, y1 exclusive)."""

    def __init__(self, max_side, doc="", **kw):
        super().__init__(doc, **kw)
        self.max_side = max_side

    def check(self, value, field, ctx):
        if value is None and self.default is None:
            return None
        if (not isinstance(value, list) or len(value) != 4
                or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
            raise JobSpecError(field, f"must be [x0, y0, x1, y1] in whole pixels, got {_show(value)}")
        x0, y0, x1, y1 = value
        width, height = ctx["width"], ctx["height"]
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise JobSpecError(field, f"{value} does not lie inside the {width}x{height} image")
        return list(value)

    def schema(self):
        box = {"type": "array", "minItems": 4, "maxItems": 4,
               "items": {"type": "integer", "minimum": 0, "maximum": self.max_side}}
        return _described({"anyOf": [box, {"type": "null"}]} if self.default is None else box, self)


class ListOf(Field):
    def __init__(self, item, lo, hi, doc="", default=MISSING, **kw):
        super().__init__(doc, default, **kw)
        self.item, self.lo, self.hi = item, lo, hi

    def check(self, value, field, ctx):
        if not isinstance(value, list) or not self.lo <= len(value) <= self.hi:
            count = f"{self.lo}" if self.lo == self.hi else f"{self.lo} to {self.hi}"
            raise JobSpecError(field, f"must list {count} items{f' ({self.doc})' if self.doc else ''}",
                               self.fix)
        return [self.item.check(v, f"{field}[{i}]", ctx) for i, v in enumerate(value)]

    def schema(self):
        return _described({"type": "array", "items": self.item.schema(), "minItems": self.lo,
                           "maxItems": self.hi}, self)


class Obj(Field):
    """A JSON object with declared fields only (an unknown one is refused: it is a typo or a
    feature this backend lacks). Absent with `default={}`: every field's default."""

    def __init__(self, fields, doc="", default=MISSING, **kw):
        super().__init__(doc, default, **kw)
        self.fields = fields

    def check(self, value, field, ctx, prefix=None):
        prefix = f"{field}." if prefix is None else prefix
        if not isinstance(value, dict):
            raise JobSpecError(field, f"must be an object with {', '.join(self.fields) or 'no fields'}", self.fix)
        unknown = sorted(set(value) - set(self.fields))
        if unknown:
            raise JobSpecError(f"{prefix}{unknown[0]}", "is not a field here",
                               f"the fields are {', '.join(self.fields)}" if self.fields else "send none")
        out = {}
        for key, declared in self.fields.items():
            name = f"{prefix}{key}"
            given = value.get(key, MISSING)
            if given is MISSING or (given is None and declared.omit):
                if declared.omit:
                    continue
                if declared.default is MISSING:
                    raise JobSpecError(name, "is missing", declared.fix)
                given = declared.default
            # later fields may depend on earlier ones (a box on the width and height)
            out[key] = declared.check(given, name, out if ctx is None else ctx)
        return out

    def schema(self):
        required = [k for k, f in self.fields.items() if f.default is MISSING and not f.omit]
        out = {"type": "object", "properties": {k: f.schema() for k, f in self.fields.items()},
               "additionalProperties": False}
        if required:
            out["required"] = required
        return _described(out, self)


class MapOf(Field):
    """An object whose keys are names (rigs, say), each holding the same kind of value."""

    def __init__(self, value, max_items, doc="", **kw):
        super().__init__(doc, **kw)
        self.value, self.max_items = value, max_items

    def check(self, value, field, ctx):
        if not isinstance(value, dict) or len(value) > self.max_items:
            raise JobSpecError(field, f"must map up to {self.max_items} names to {self.value.doc or 'values'}")
        return {safe_name(k, f"{field}.{k}"): self.value.check(v, f"{field}.{k}", ctx) for k, v in value.items()}

    def schema(self):
        return _described({"type": "object", "maxProperties": self.max_items,
                           "propertyNames": {"pattern": NAME_PATTERN, "maxLength": 64},
                           "additionalProperties": self.value.schema()}, self)


class Const(Field):
    def __init__(self, value, doc="", default=MISSING):
        super().__init__(doc, default)
        self.value = value

    def check(self, value, field, ctx):
        if value != self.value or isinstance(value, bool):
            raise JobSpecError(field, f"must be {self.value!r}, got {_show(value)}")
        return value

    def schema(self):
        return _described({"const": self.value}, Field(self.doc))


def map_images(declared, value, change, field=""):
    """A copy of a checked `value` of `declared` with every Image value replaced by
    `change(field, value)` (pictures swapped for their hashes, or hashes for the pictures)."""
    if isinstance(declared, Image):
        return change(field, value)
    if isinstance(declared, Obj) and isinstance(value, dict):
        return {key: map_images(declared.fields[key], inner, change, f"{field}.{key}" if field else key)
                if key in declared.fields else inner for key, inner in value.items()}
    if isinstance(declared, ListOf) and isinstance(value, list):
        return [map_images(declared.item, item, change, f"{field}[{i}]") for i, item in enumerate(value)]
    return value


def image_values(declared, value, field):
    """(field, value) of every Image field in a checked `value` of `declared`."""
    if isinstance(declared, Image):
        yield field, value
    elif isinstance(declared, Obj) and isinstance(value, dict):
        for key, inner in declared.fields.items():
            if key in value:
                yield from image_values(inner, value[key], f"{field}.{key}" if field else key)
    elif isinstance(declared, ListOf) and isinstance(value, list):
        for i, item in enumerate(value):
            yield from image_values(declared.item, item, f"{field}[{i}]")
