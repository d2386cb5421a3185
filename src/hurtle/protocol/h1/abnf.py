"""The HTTP/1.1 grammar as compiled regexes, each beside the RFC rule it implements.

Validation is done over a whole request head with a few C-level regex calls,
never byte by byte in Python.
"""

from __future__ import annotations

import re

# RFC 9110 5.6.2:
#   token = 1*tchar
#   tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#           "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
TOKEN = TCHAR + rb"+"

# RFC 9112 3:
#   request-line = method SP request-target SP HTTP-version
#   HTTP-version = HTTP-name "/" DIGIT "." DIGIT
# The request-target is any run of visible ASCII (RFC 9112 3.2; its forms are
# told apart afterwards). Non-ASCII bytes are rejected: a conforming client
# percent-encodes them, and two parsers that disagree on them is how requests
# get smuggled.
REQUEST_LINE = re.compile(rb"(" + TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
# The same line for HTTP/1.x only, with its CRLF, matched from the head's start:
# it gives the line's end without a find() of its own (the parser's fast path;
# any other line goes to the careful path, which tells 400 from 505).
REQUEST_HEAD = re.compile(rb"(" + TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.([0-9])\r\n")

# RFC 9110 5.5 and RFC 9112 5:
#   field-line   = field-name ":" OWS field-value OWS
#   field-value  = *field-content
#   field-vchar  = VCHAR / obs-text
# Each line ends in CRLF. The class for the value excludes CR, LF, NUL and every
# other control but HTAB, so bare CR or LF line ends, obs-fold (a line starting
# with whitespace is not a token) and whitespace before the colon all fail.
HEADER_BLOCK = re.compile(rb"(?:" + TOKEN + rb":[\t\x20-\x7e\x80-\xff]*\r\n)*")
# Splits a validated block into (name, value) pairs with OWS trimmed.
HEADER_FIELD = re.compile(rb"([^:]+):[ \t]*((?:[^\r]*[^\r \t])?)[ \t]*\r\n")
# The same grammar, one line per match and OWS trimmed, anchored at line
# starts: a block is valid exactly when every line of it is a match, i.e.
# when ``findall`` returns as many fields as the block has LFs (a bare CR or
# LF, a control or a bad name makes its line, or two lines, fail to match).
# One findall and one count instead of a fullmatch plus a findall: 2.0k fewer
# instructions per request on bench/instructions.py (112.2k -> 110.2k).
# The leading OWS is followed by no whitespace (the lookahead), so it takes
# the whole run or the line fails at once: without it, the engine tried every
# split of a run of spaces between the OWS and the value before refusing a
# line, quadratic time (a 32 KB line of spaces ending in a control byte took
# 19 s of CPU). The lookahead costs about 150 instructions per line.
FIELD_LINE = re.compile(
    rb"^("
    + TOKEN
    + rb"):[ \t]*(?![ \t])((?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)[ \t]*\r\n",
    re.MULTILINE,
)
# The same lines as nearly every client writes them: name, colon, one SP, and
# a value that starts and ends with a field-vchar. The parser's fast path
# tries it first; a line it does not match (another OWS, an empty value,
# trailing OWS, or an invalid line) makes the counts differ, and FIELD_LINE
# then decides for the whole block. The literal SP and a value that cannot
# start with whitespace leave the engine nothing to trim or split: some
# hundreds of instructions fewer per line than FIELD_LINE or an ``:[ \t]*``
# form (callgrind; ``: ?`` costs 0.4k more), and linear time on any line.
FIELD_LINE_PLAIN = re.compile(
    rb"^(" + TOKEN + rb"): ([\x21-\x7e\x80-\xff][\t\x20-\x7e\x80-\xff]*)(?<![ \t])\r\n",
    re.MULTILINE,
)

# RFC 9112 7.1:
#   chunk-size = 1*HEXDIG
#   chunk-ext  = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#   chunk-ext-val = token / quoted-string
# RFC 9110 5.6.4:
#   quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
QUOTED_STRING = rb'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
CHUNK_EXT_VAL = rb"(?:" + TOKEN + rb"|" + QUOTED_STRING + rb")"
CHUNK_EXT = rb"(?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*" + CHUNK_EXT_VAL + rb")?)*"
HEX_PREFIX = re.compile(rb"[0-9A-Fa-f]+")
CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]+)(" + CHUNK_EXT + rb")\r\n")

# RFC 9110 8.6: Content-Length = 1*DIGIT (a list of equal values is refused
# too: it is legal to merge but a classic smuggling vector, so be strict).
CONTENT_LENGTH = re.compile(rb"[0-9]+")
