"""Optional Ed25519 signatures over model manifests, checked before any model is read.

Every service's manifests list each artifact file's sha256, and its loader reads a file
only when the hash matches. A signature over the manifest extends that to the manifest
itself: someone who can write the model directory can no longer swap a model in by
rewriting its hash too. The signature is detached, base64 in ``<manifest>.sig``.

Verification is on when ``MODEL_SIGNING_PUBLIC_KEY_FILE`` names a PEM Ed25519 public
key (a file or a mounted Kubernetes secret, like the other ``*_FILE`` settings); every
manifest must then carry a valid signature, else :class:`SignatureError` (and one
``model manifest refused`` error log line naming the manifest and the reason) and the
service does not serve that model. Without the variable, manifests are read as before.

    python -m services.runtime.model_signing keygen DIR        # DIR/signing-key.pem + .pub.pem
    python -m services.runtime.model_signing sign KEY MANIFEST...

The private key never belongs in the repository or an image; sign where models are
released (CI with the key from its secret store).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import functools
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

logger = logging.getLogger(__name__)

PUBLIC_KEY_ENV = "MODEL_SIGNING_PUBLIC_KEY_FILE"
SIGNATURE_SUFFIX = ".sig"


class SignatureError(Exception):
    """A manifest's signature is missing, malformed or does not verify."""


def signature_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.name + SIGNATURE_SUFFIX)


@functools.lru_cache(maxsize=4)
def _public_key(path: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as error:
        raise SignatureError(f"{PUBLIC_KEY_ENV}: cannot read a public key from {path}") from error
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{PUBLIC_KEY_ENV}: {path} is not an Ed25519 public key")
    return key


def configured_key(environ: Mapping[str, str] | None = None) -> Ed25519PublicKey | None:
    """The public key manifests must be signed with, or None when signing is off."""
    path = (os.environ if environ is None else environ).get(PUBLIC_KEY_ENV, "")
    return _public_key(path) if path else None


def log_refusal(manifest: Path, reason: str, fault: BaseException | None = None) -> None:
    """The one log line of a refused manifest or artifact (signature, hash, missing file);
    ``fault``, a loader's own failure, adds its traceback."""
    logger.error(
        "model manifest refused",
        extra={"manifest": str(manifest), "reason": reason},
        exc_info=fault,
    )


def _refuse(manifest: Path, reason: str) -> SignatureError:
    log_refusal(manifest, reason)
    return SignatureError(f"{manifest}: {reason}; refusing its models")


def read_manifest(manifest: Path, key: Ed25519PublicKey | None = None) -> str:
    """The manifest's text, verified against ``key`` (default: the configured one).

    The text returned is the exact bytes verified, so nothing can change in between.
    OSError when the manifest itself cannot be read, as from ``Path.read_text``.
    """
    key = key or configured_key()
    data = manifest.read_bytes()
    if key is not None:
        try:
            encoded = signature_path(manifest).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise _refuse(manifest, "no readable signature, and signatures are required") from error
        try:
            key.verify(base64.b64decode(encoded, validate=True), data)
        except (binascii.Error, InvalidSignature) as error:
            raise _refuse(manifest, "signature does not verify with the configured key") from error
    return data.decode("utf-8")


def sign(manifest: Path, private_key: Ed25519PrivateKey) -> Path:
    """Write ``<manifest>.sig`` for the manifest as it is now."""
    signature = private_key.sign(manifest.read_bytes())
    path = signature_path(manifest)
    path.write_text(base64.b64encode(signature).decode("ascii") + "\n", encoding="ascii")
    return path


def keygen(directory: Path) -> tuple[Path, Path]:
    """A new key pair: ``signing-key.pem`` (private, 0600) and ``signing-key.pub.pem``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = directory / "signing-key.pem"
    public = directory / "signing-key.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit(f"{path} is not an Ed25519 private key")
    return key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.runtime.model_signing", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    keygen_command = commands.add_parser("keygen", help="write a new Ed25519 key pair")
    keygen_command.add_argument("directory", type=Path)
    sign_command = commands.add_parser("sign", help="sign manifests (writes <manifest>.sig)")
    sign_command.add_argument("key", type=Path, help="PEM Ed25519 private key")
    sign_command.add_argument("manifests", type=Path, nargs="+")
    options = parser.parse_args(argv)
    if options.command == "keygen":
        private, public = keygen(options.directory)
        print(f"wrote {private} (keep it secret) and {public} (set {PUBLIC_KEY_ENV} to it)")
        return 0
    key = _load_private_key(options.key)
    for manifest in options.manifests:
        print(f"signed {manifest} -> {sign(manifest, key)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
