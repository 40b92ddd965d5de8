"""Bundle signatures: ed25519 over the whole bundle before the signature (its header, metadata,
BPF object, source and requirements, the exact bytes), with keys in PEM as
`openssl genpkey -algorithm ed25519` writes them.

    bpftc --sign private.pem ...       the bundle ends with the signer's ID and the signature
    bpfrun --trust public.pem ...      refuses, before decoding any section, a bundle that is not
                                       signed by that key

A signer's ID is the first 8 bytes of the SHA-256 of its raw public key, shown as 16 hex digits.
Here a signature is {"signer": 16 hex digits, "ed25519": 64 bytes}; common/bundle.py stores it as
SIGNER_BYTES + ED25519_BYTES bytes. The `cryptography` library (Debian's python3-cryptography) is
imported only to sign or to check.
"""

from __future__ import annotations

# CPython's own SHA-256, not hashlib's: hashlib loads OpenSSL's libcrypto, 3.4 MiB resident and
# a few ms of bpfrun's start for one digest of a small bundle.
try:
    from _sha256 import sha256  # CPython 3.11
except ImportError:
    try:
        from _sha2 import sha256  # CPython 3.12+
    except ImportError:
        from hashlib import sha256

SIGNATURE_FIELDS = {"signer", "ed25519"}
SIGNER_BYTES = 8
ED25519_BYTES = 64


class SignatureError(ValueError):
    """A key that cannot be used, or a signature that does not hold; one line for the user."""


def signer_id(public_key) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256(raw).hexdigest()[: 2 * SIGNER_BYTES]


MAX_KEY_FILE_BYTES = 1 << 16


def read_key(path: str, private: bool):
    """The ed25519 key in PEM file `path`; SignatureError naming the file when it cannot be used."""
    try:
        with open(path, "rb") as file:
            pem = file.read(MAX_KEY_FILE_BYTES)
    except OSError as error:
        raise SignatureError(f"cannot read {path}: {error.strerror}") from None
    try:
        return load_private_key(pem) if private else load_public_key(pem)
    except SignatureError as error:
        raise SignatureError(f"{path}: {error}") from None


def load_private_key(pem: bytes):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise SignatureError("not a PEM private key without a password") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("not an ed25519 key (openssl genpkey -algorithm ed25519)")
    return key


def load_public_key(pem: bytes):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise SignatureError("not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError("not an ed25519 public key (openssl pkey -pubout)")
    return key


def sign(data: bytes, private_key) -> dict:
    return {"signer": signer_id(private_key.public_key()), "ed25519": private_key.sign(data)}


def well_formed(signature: object) -> bool:
    return (
        isinstance(signature, dict)
        and set(signature) == SIGNATURE_FIELDS
        and isinstance(signature["signer"], str)
        and len(signature["signer"]) == 2 * SIGNER_BYTES
        and isinstance(signature["ed25519"], bytes)
        and len(signature["ed25519"]) == ED25519_BYTES
    )


def check(data: bytes, signature: object, trusted_key) -> None:
    """Raise SignatureError unless `signature` is the trusted key's over `data`."""
    from cryptography.exceptions import InvalidSignature

    if signature is None:
        raise SignatureError("bundle is not signed, and bpfrun was told to trust only signed bundles")
    if not well_formed(signature):
        raise SignatureError("bundle's signature is malformed")
    trusted = signer_id(trusted_key)
    if signature["signer"] != trusted:
        raise SignatureError(f"bundle is signed by {str(signature['signer'])[:16]!r}, not by the trusted key {trusted}")
    try:
        trusted_key.verify(signature["ed25519"], data)
    except (InvalidSignature, TypeError, ValueError):
        raise SignatureError("bundle's signature does not match its contents (tampered)") from None
