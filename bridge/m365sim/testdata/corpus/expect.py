#!/usr/bin/env python3
"""Derive expectations.json for the real-world MIME corpus beside this file.

An independent parser (Python 3's email package, policy.default) reads
each *.eml and records what a mailbox that received it must show: subject,
From address, To addresses, attachments (name, sha256 of the decoded bytes,
kind) and the text/plain body as lines. The Go test (bridge/corpus_test.go)
syncs every message through the simulator and the real runner and compares
the events with this file.

A field is "comparable" only when Python reads it without a defect and
without guessing: a field whose raw bytes are undeclared 8-bit that is not
UTF-8, a header Python cannot parse, a part with a transfer encoding outside
RFC 2045 (x-uuencode) or a broken multipart structure is recorded as null
with the reason, so the test counts it as not comparable instead of
asserting a guess of ours.

Body rule (shared with the simulator, see README.md): the text body is every
text/plain leaf that is not an attachment (no Content-Disposition:
attachment, no file name), outside attached messages, in order, joined with
a line break when a part does not end with one. It is compared only for
mail written as text (no text/html body part): Exchange stores the HTML
body of other mail and renders its text from that. Attachments are the other
leaves; message/rfc822 parts are item attachments (compared by count only:
Exchange rebuilds their MIME).

Run: python3 expect.py  (rewrites expectations.json; deterministic)
"""

import email
import email.errors
import email.policy
import hashlib
import json
import os
import quopri
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STD_CTE = {"", "7bit", "8bit", "binary", "base64", "quoted-printable"}
STRUCT_DEFECTS = (
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
    email.errors.MissingHeaderBodySeparatorDefect,
    email.errors.FirstHeaderLineIsContinuationDefect,
    email.errors.MisplacedEnvelopeHeaderDefect,
)


def raw_header(raw, name):
    """The raw bytes of the first header called name in the top-level header block."""
    end = len(raw)
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if 0 <= i < end:
            end = i
    m = re.search(rb"(?im)^" + re.escape(name.encode()) + rb"[ \t]*:(.*(?:\r?\n[ \t].*)*)", raw[:end])
    return m.group(1) if m else None


def unambiguous_bytes(b):
    """ASCII, or valid UTF-8 (RFC 6532): no charset guess needed."""
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def header_defects(h):
    return [d for d in getattr(h, "defects", ()) if not isinstance(d, email.errors.NonASCIILocalPartDefect)]


def subject_of(msg, raw):
    rb = raw_header(raw, "Subject")
    if rb is None:
        return None, "no Subject header"
    if not unambiguous_bytes(rb):
        return None, "undeclared 8-bit subject"
    try:
        h = msg["Subject"]
    except Exception as e:  # noqa: BLE001 - the parser's own failure
        return None, "python: %s" % e
    if h is None:
        return None, "no Subject header"
    if "\ufffd" in str(h):
        return None, "python could not decode the subject's charset"
    if header_defects(h):
        return None, "python defects: %s" % header_defects(h)[0].__class__.__name__
    return " ".join(str(h).split()), None


def addresses_of(msg, raw, name):
    rb = raw_header(raw, name)
    if rb is None:
        return None, "no %s header" % name
    if not unambiguous_bytes(rb):
        return None, "undeclared 8-bit %s" % name
    try:
        h = msg[name]
        addrs = h.addresses
    except Exception as e:  # noqa: BLE001
        return None, "python: %s" % e
    if header_defects(h):
        return None, "python defects: %s" % header_defects(h)[0].__class__.__name__
    out = []
    for a in addrs:
        if not a.username or not a.domain:
            return None, "address without local part or domain"
        out.append(a.addr_spec.lower())
    return out, None


def payload_bytes(part):
    """Decoded bytes of a leaf. Quoted-printable follows RFC 2045 §6.7 (3):
    trailing whitespace on an encoded line is transport padding and is
    deleted (Python keeps it)."""
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if cte == "quoted-printable":
        raw = part.get_payload(decode=False)
        if isinstance(raw, str):
            try:
                raw = raw.encode("ascii", "surrogateescape")
            except UnicodeEncodeError:
                # The parser decoded 8-bit text with the declared charset.
                try:
                    raw = raw.encode(part.get_content_charset() or "ascii", "surrogateescape")
                except (LookupError, UnicodeEncodeError):
                    return None  # the original bytes are not recoverable here
            lines = []
            for line in raw.split(b"\n"):
                cr = line.endswith(b"\r")
                line = line.rstrip(b"\r").rstrip(b" \t")
                lines.append(line + (b"\r" if cr else b""))
            return quopri.decodestring(b"\n".join(lines))
    return part.get_payload(decode=True) or b""


def truncated_base64(part):
    """A base64 body of 4n+1 alphabet characters: Python then returns the
    undecoded text; no decoder agrees on such data."""
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    raw = part.get_payload(decode=False)
    return cte == "base64" and isinstance(raw, str) and len(re.sub(r"[^A-Za-z0-9+/]", "", raw.split("=")[0])) % 4 == 1


def decode_text(part):
    """Decoded text of a body part, or (None, reason) when a guess would be needed."""
    if truncated_base64(part):
        return None, "truncated base64 (4n+1 characters)"
    payload = payload_bytes(part)
    if payload is None:
        return None, "8-bit quoted-printable in a charset Python does not know"
    declared = part.get_param("charset")
    if declared:
        cs = str(declared).strip().lower()
        try:
            return payload.decode(cs), None
        except (LookupError, UnicodeDecodeError) as e:
            return None, "charset %s: %s" % (cs, e.__class__.__name__)
    if unambiguous_bytes(payload):
        return payload.decode("utf-8"), None
    return None, "undeclared 8-bit text"


def filename_of(part):
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        return None
    if name is None:
        name = part.get_param("name")
        if isinstance(name, tuple):
            name = email.utils.collapse_rfc2231_value(name)
        if name is not None:
            name = str(email.header.make_header(email.header.decode_header(name)))
    return name


def expect(path):
    raw = open(path, "rb").read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    e = {"file": os.path.basename(path)}
    e["subject"], e["subject_why"] = subject_of(msg, raw)
    frm, why = addresses_of(msg, raw, "From")
    if frm is not None and len(frm) != 1:
        frm, why = None, "From has %d addresses" % len(frm)
    e["from"], e["from_why"] = (frm[0] if frm else None), why
    e["to"], e["to_why"] = addresses_of(msg, raw, "To")

    texts, text_why, has_html = [], None, False
    atts, att_why = [], None
    for part in walk(msg):
        if any(isinstance(d, STRUCT_DEFECTS) for d in part.defects):
            att_why = text_why = "python defects: %s" % next(
                d for d in part.defects if isinstance(d, STRUCT_DEFECTS)).__class__.__name__
        ctype = part.get_content_type()
        if ctype == "message/rfc822" and part is not msg:
            atts.append({"kind": "item"})
            continue
        if ctype.startswith("message/") and part is not msg:
            # message/delivery-status and kin: Python splits them into
            # header blocks, so their bytes are not recorded; counted only.
            atts.append({"kind": "file", "name": filename_of(part), "sha256": None})
            continue
        if part.is_multipart():
            continue
        cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        disp = part.get_content_disposition()
        name = filename_of(part)
        if ctype in ("text/plain", "text/html") and disp != "attachment" and not name:
            if ctype == "text/html":
                has_html = True
            if ctype == "text/plain":
                if cte not in STD_CTE:
                    text_why = "transfer encoding %s" % cte
                    continue
                t, why = decode_text(part)
                if why:
                    text_why = why
                    continue
                texts.append(t)
            continue
        if cte not in STD_CTE:
            att_why = "transfer encoding %s" % cte
        if truncated_base64(part):
            att_why = "truncated base64 (4n+1 characters): no decoder agrees on it"
        if name is not None and "\ufffd" in name:
            name = None  # Python could not decode the name's charset
        data = payload_bytes(part)
        if data is None:
            att_why, data = "8-bit quoted-printable in a charset Python does not know", b""
        atts.append({"kind": "file", "name": name, "sha256": hashlib.sha256(data).hexdigest()})
    e["attachments"], e["attachments_why"] = (None, att_why) if att_why else (atts, None)
    if has_html:
        # Exchange keeps one body, the HTML one; its text rendition is
        # made from that HTML, not the text/plain alternative.
        text_why = "written as HTML: the text body is a rendition of it"
    if text_why or not texts:
        e["text_lines"], e["text_why"] = None, text_why or "no text/plain body part"
    else:
        joined = ""
        for t in texts:
            if joined and not joined.endswith("\n"):
                joined += "\n"
            joined += t
        e["text_lines"], e["text_why"] = body_lines(joined), None
    return e


def walk(part):
    """Leaves and multiparts in order, not descending into attached messages."""
    yield part
    if part.is_multipart() and not part.get_content_type().startswith("message/"):
        for sub in part.get_payload():
            yield from walk(sub)


def body_lines(t):
    """Lines of a text body: line ends normalised, trailing blank lines dropped."""
    lines = t.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and lines[-1].strip() == "":
        lines.pop()
    return lines


def main():
    files = sorted(f for f in os.listdir(HERE) if f.endswith(".eml"))
    out = [expect(os.path.join(HERE, f)) for f in files]
    with open(os.path.join(HERE, "expectations.json"), "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False, indent=1, sort_keys=True)
        fh.write("\n")
    n = len(out)
    for k in ("subject", "from", "to", "attachments", "text_lines"):
        print("%-12s comparable %d/%d" % (k, sum(1 for x in out if x[k] is not None), n), file=sys.stderr)


if __name__ == "__main__":
    main()
