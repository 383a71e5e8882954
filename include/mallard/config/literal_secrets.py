"""What a secret written into a config file looks like: by the name it is given, or by its shape.

Names are split into words (`X-Api-Key`, `apiKey`, `access_token` -> api/key, access/token), so
that `tokenizer`, `author` or `keyword` are not secrets while `X-Amz-Signature` is. A few words
are secrets only in some company: `key` except after primary/sort/page/... (`page_key` is a
position, `api_key` a credential), `token` except after page/next/... (a pagination token),
`access` and `session` only at the end of a name (`access=...`, not `access_type=offline`).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

# Roots that make any word containing them a secret (`apitoken`, `client_secret`, `db_password`).
_SECRET_ROOTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "signature",
    "credential",
    "apikey",
    "accesskey",
    "privatekey",
    "cookie",
    "sessionid",
    "authorization",
)
_NOT_SECRET_WORDS = {"tokenize", "tokenizer", "tokenized", "tokenization", "secretary"}
_SECRET_WORDS = {"sig", "pwd", "auth", "creds", "jwt", "sas", "hmac", "otp"}
# `<word>_key` that names a position or an identifier, not a credential.
_PLAIN_KEY_AFTER = {
    "primary",
    "foreign",
    "sort",
    "partition",
    "page",
    "cache",
    "idempotency",
    "public",
    "group",
    "order",
    "lookup",
    "row",
    "cursor",
    "next",
    "start",
    "last",
    "dedup",
    "dedupe",
    "join",
    "index",
    "object",
    "file",
    "bucket",
    "map",
    "hash",
    "unique",
    "natural",
    "composite",
    "surrogate",
    "business",
}
# `<word>_token` that is a pagination position, not a credential.
_PLAIN_TOKEN_AFTER = {"page", "next", "prev", "previous", "continuation", "cursor", "sync", "resume", "start"}
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

# Values that are credentials whatever they are called.
SECRET_LOOKING_VALUES = [
    ("a bearer token", re.compile(r"\b(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}")),
    ("an API secret key", re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")),
    ("a Stripe key", re.compile(r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{10,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a URL with a password", re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")),
]
# A header or parameter value that is one long random-looking word: a key, whatever its name.
_TOKEN_SHAPED = re.compile(r"^[A-Za-z0-9_\-+/=.~]{24,}$")
_HEX = re.compile(r"^[0-9a-fA-F]{32,}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_AUTH_SCHEME = re.compile(r"(?i)^(basic|bearer|token|digest|apikey|api-key|hmac|sharedkey|sas)\s+\S{6,}")
_PLACEHOLDER = re.compile(r"^\{[^{}]*\}$")
_PARAM_NAME = re.compile(r"^[A-Za-z0-9_.\-\[\]]+$")


def name_words(name: str) -> list[str]:
    """`X-Api-Key` -> ['x', 'api', 'key']; `nextPageToken` -> ['next', 'page', 'token']."""
    return [word.lower() for word in _WORDS.findall(name)]


def secret_name(name: str) -> bool:
    """Whether a header, query parameter or argument called `name` carries a credential."""
    words = name_words(name)
    for index, word in enumerate(words):
        before = words[index - 1] if index else ""
        last = index == len(words) - 1
        if word in _NOT_SECRET_WORDS:
            continue
        if word in ("token", "tokens"):
            if before not in _PLAIN_TOKEN_AFTER:
                return True
        elif word in _SECRET_WORDS or any(root in word for root in _SECRET_ROOTS):
            return True
        elif word in ("key", "keys"):
            if before not in _PLAIN_KEY_AFTER:
                return True
        elif (word == "access" and last) or (word == "session" and (last or words[index + 1] == "id")):
            return True
    return False


def looks_like_token(value: str) -> bool:
    """A value shaped like a credential: an auth scheme and its credentials, or one long random word."""
    if _AUTH_SCHEME.match(value):
        return True
    if _UUID.match(value) or not _TOKEN_SHAPED.match(value):
        return False
    mixed = any(c.isdigit() for c in value) and any(c.islower() for c in value) and any(c.isupper() for c in value)
    return mixed or bool(_HEX.match(value))


# One pass over each value instead of one per pattern (every string of the file is scanned).
_ANY_SECRET_LOOKING = re.compile("|".join(f"(?P<p{i}>{p.pattern})" for i, (_, p) in enumerate(SECRET_LOOKING_VALUES)))


def secret_looking_value(value: str) -> str | None:
    """What `value` looks like (`a bearer token`, ...) when it holds a well-known credential format."""
    match = _ANY_SECRET_LOOKING.search(value)
    return SECRET_LOOKING_VALUES[int(match.lastgroup[1:])][0] if match and match.lastgroup else None


def secret_query_params(url: str) -> list[str]:
    """The query parameters of `url` (or of a relative `path?query`) named like secrets, with a literal value."""
    if "?" not in url or "=" not in url:
        return []
    try:
        query = urlsplit(url).query
    except ValueError:  # not a URL at all (e.g. an unbalanced '[' in a description)
        return []
    return [
        name
        for name, value in parse_qsl(query, keep_blank_values=False)
        if _PARAM_NAME.match(name) and secret_name(name) and not _PLACEHOLDER.match(value)
    ]


def url_secret_message(names: list[str]) -> str:
    """The problem of a URL whose query carries secrets (`names`); the values are never shown."""
    which = ", ".join(repr(name) for name in names)
    plural = "s" if len(names) > 1 else ""
    return (
        f"the URL's query parameter{plural} {which} is named like a credential and written in the file (value hidden)"
    )


def url_secret_fix(name: str) -> str:
    """How to send the query parameter `name` without writing its value in the file."""
    return (
        f"take `{name}=...` out of the URL and send it by reference: in a rest_api resource "
        f"`params: {{{name}: {{env: MY_SECRET}}}}` (or `{{connection: my_conn}}`), resolved when the task runs"
    )
