"""The organisation's Ed25519 key, which signs every evidence manifest (docs/evidence.md).

The private key is made at the first export (PEM, mode 0600, at ``evidence.signing_key``); its
public half is written beside it as ``<name>.pub`` to hand to whoever must check bundles. A
bundle's ``manifest.sig`` holds the signature of the exact bytes of ``manifest.json``, the
public key and its fingerprint (the SHA-256 of the raw 32-byte public key, in hex). A signature
proves the manifest is unchanged since it was signed by *some* key: only a check against the
organisation's public key (or its fingerprint, read out over another channel) proves by whom.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..foundation.private import private_dir, tighten, write_private

SIGNATURE = "manifest.sig"
ALGORITHM = "ed25519"


class SigningError(Exception):
    """A key or signature file cannot be read or used (the sentence names the file)."""


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_key_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".pub")


def load_or_create_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The signing key at `path`, made (0600, its public half beside it) if there is none;
    True when it was just made."""
    if path.exists():
        tighten(path, 0o600)
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise SigningError(f"{path}: cannot read the evidence signing key "
                               f"(evidence.signing_key): {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError(f"{path}: not an Ed25519 private key (evidence.signing_key)")
        return key, False
    key = Ed25519PrivateKey.generate()
    private_dir(path.parent)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        write_private(path, pem)
        public = public_key_path(path)
        public.unlink(missing_ok=True)
        public.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        os.chmod(public, 0o644)  # it is meant to be handed out
    except OSError as exc:
        raise SigningError(f"{path}: cannot write the evidence signing key: {exc.strerror}"
                           ) from None
    return key, True


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A trusted public key from a PEM file (the ``.pub`` beside the signing key)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise SigningError(f"{path}: cannot read the public key: {exc.strerror}") from None
    except ValueError as exc:
        raise SigningError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{path}: not an Ed25519 public key")
    return key


def sign(manifest: bytes, key: Ed25519PrivateKey) -> bytes:
    """The content of ``manifest.sig`` for these exact manifest bytes."""
    public = key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return (json.dumps({
        "algorithm": ALGORITHM,
        "public_key": base64.b64encode(raw).decode(),
        "fingerprint": fingerprint(public),
        "signature": base64.b64encode(key.sign(manifest)).decode(),
    }, indent=2) + "\n").encode()


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    signer: str | None
    """The fingerprint of the key that made a valid signature."""
    trusted: bool
    """Checked against the trusted key (or fingerprint) given, and made by it."""
    problem: str | None
    """Why the signature fails, as a sentence; None when it is valid."""


def check(folder: Path, manifest: bytes, *, trusted: str | None) -> SignatureCheck:
    """Check ``folder/manifest.sig`` over `manifest`; `trusted` is the fingerprint that must
    have signed it (None: any key, and the result says it was not trusted)."""
    path = folder / SIGNATURE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("algorithm") != ALGORITHM:
            return SignatureCheck(None, False, f"{SIGNATURE}: unknown algorithm "
                                  f"{data.get('algorithm')!r} (expected {ALGORITHM!r})")
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(data["public_key"]))
        signature = base64.b64decode(data["signature"])
    except FileNotFoundError:
        return SignatureCheck(None, False, f"{SIGNATURE} is missing: the bundle is not signed, "
                              "so a changed manifest cannot be detected")
    except OSError as exc:
        return SignatureCheck(None, False, f"{SIGNATURE}: cannot read it: {exc.strerror}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return SignatureCheck(None, False, f"{SIGNATURE} is damaged ({exc})")
    try:
        public.verify(signature, manifest)
    except InvalidSignature:
        return SignatureCheck(None, False, f"{SIGNATURE}: the signature does not match "
                              "manifest.json: the manifest was changed after it was signed")
    signer = fingerprint(public)
    if trusted is not None and signer != trusted.lower():
        return SignatureCheck(signer, False, f"{SIGNATURE}: signed by another key (fingerprint "
                              f"{signer}), not the trusted key {trusted.lower()}")
    return SignatureCheck(signer, trusted is not None, None)
