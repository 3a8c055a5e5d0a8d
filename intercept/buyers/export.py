"""Evidence bundles for law enforcement: write one (`export_bundle`), check one (`verify`).

A bundle is a folder::

    manifest.json            what is here: SHA-256 and size of every other file, the filters,
                             the time range, the scenario versions, the generator
    profiles.json            one profile per buyer (intercept.buyers.profiles)
    profiles.csv             the same, one row per buyer
    conversations.csv        one row per conversation
    messages.csv             every message, in and out, with its time (UTC)
    transcripts/<id>.json    one conversation: its summary and every message
    media/<sha256>.<ext>     the photos he sent, named by their SHA-256
    manifest.sig             the organisation's Ed25519 signature of manifest.json
                             (intercept.buyers.signing)

Only buyer data goes in: conversations admitted by `store.reads.buyer_conversation_ids`
(never an outreach conversation, nor a number found in ads or texted by outreach). `verify`
checks the signature (against a trusted key when one is given), the counts, and names every
file that is missing, altered (its SHA-256 differs) or extra.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..foundation.private import private_dir
from ..store.reads import transcript
from .media import media_path
from .profiles import Profile, buyer_profiles, conversation_json, iso
from .signing import SIGNATURE, check, sign

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

FORMAT = "intercept-evidence/1"
MANIFEST = "manifest.json"
_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
               "image/webp": ".webp", "image/heic": ".heic", "image/heif": ".heif",
               "image/bmp": ".bmp", "image/tiff": ".tiff"}


class ExportError(Exception):
    """The bundle cannot be written (the sentence names the folder or file)."""


def generator_version() -> str:
    from importlib import metadata

    try:
        return f"intercept {metadata.version('intercept')}"
    except metadata.PackageNotFoundError:  # running from a checkout
        from .. import __version__

        return f"intercept {__version__}"


@dataclass(slots=True)
class ExportSummary:
    out: Path
    buyers: int = 0
    conversations: int = 0
    messages: int = 0
    media: int = 0
    files: int = 0
    """Files listed in the manifest (every file but the manifest)."""
    missing_media: list[str] = field(default_factory=list)
    manifest_sha256: str = ""
    signer: str = ""
    """The fingerprint of the key that signed the manifest."""


class _Bundle:
    def __init__(self, out: Path):
        self.out = out
        self.files: dict[str, tuple[str, int]] = {}

    def write(self, relative: str, data: bytes) -> None:
        path = self.out / relative
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        self.files[relative] = (hashlib.sha256(data).hexdigest(), len(data))

    def write_json(self, relative: str, value: Any) -> None:
        self.write(relative, (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode())

    def write_csv(self, relative: str, header: list[str], rows: list[list[Any]]) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        self.write(relative, text.getvalue().encode())


def export_bundle(conn: sqlite3.Connection, ids: list[int], out: Path, media_dir: Path, *,
                  filters: Mapping[str, Any], key: Ed25519PrivateKey,
                  city_of: Mapping[str, str] | None = None,
                  now: float | None = None) -> ExportSummary:
    """Write the bundle of buyer conversations `ids` (from `profiles.selected_conversations`)
    into `out`, which must not exist or be empty (it is made, or tightened to, 0700), and sign
    its manifest with `key`. On any error the folder is removed."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: the folder exists and is not empty; give a new folder")
    created = not out.exists()
    private_dir(out)
    try:
        summary = _export(conn, ids, out, media_dir, filters, city_of, now)
        manifest = (out / MANIFEST).read_bytes()
        _Bundle(out).write(SIGNATURE, sign(manifest, key))
        summary.signer = check(out, manifest, trusted=None).signer or ""
        return summary
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise


def _export(conn: sqlite3.Connection, ids: list[int], out: Path, media_dir: Path,
            filters: Mapping[str, Any], city_of: Mapping[str, str] | None,
            now: float | None) -> ExportSummary:
    bundle = _Bundle(out)
    summary = ExportSummary(out)
    profiles = buyer_profiles(conn, ids, city_of=city_of)
    media_files: dict[str, str] = {}
    for profile in profiles:
        for photo in profile.photos:
            if photo.status != "stored" or not photo.sha256 or photo.sha256 in media_files:
                continue
            name = f"media/{photo.sha256}{_EXTENSIONS.get(photo.content_type or '', '')}"
            problem = _copy_media(bundle, media_dir, photo.sha256, name)
            if problem:
                summary.missing_media.append(f"{photo.sha256}: {problem}")
            else:
                media_files[photo.sha256] = name
    scenarios: set[tuple[str, int]] = set()
    times: list[float] = []
    message_rows: list[list[Any]] = []
    conversation_rows: list[list[Any]] = []
    for profile in profiles:
        for c in profile.conversations:
            if c.scenario:
                scenarios.add((c.scenario, c.version or 0))
            lines = transcript(conn, c.id)
            photos_by_seq: dict[str, list[str]] = {}
            for photo in c.photos:
                seq = conn.execute("SELECT i.conv_seq FROM media m JOIN inbound i ON "
                                   "i.seq = m.inbound_seq WHERE m.id = ?",
                                   (photo.media_id,)).fetchone()
                if seq is not None and photo.sha256 in media_files:
                    photos_by_seq.setdefault(str(seq[0]), []).append(media_files[photo.sha256])
            messages = []
            for line in lines:
                times.append(line.at)
                entry = {"direction": line.direction, "at": iso(line.at), "id": line.id,
                         "from": profile.number if line.direction == "in" else c.our_number,
                         "to": c.our_number if line.direction == "in" else profile.number,
                         "text": line.text}
                if line.direction == "in":
                    entry["media_urls"] = list(line.media)
                    entry["photos"] = photos_by_seq.get(line.id, [])
                else:
                    entry["kind"], entry["status"] = line.kind, line.status
                messages.append(entry)
                message_rows.append([c.id, entry["at"], line.direction, entry["from"],
                                     entry["to"], line.text, line.kind or "",
                                     line.status or "", " ".join(entry.get("photos", []))])
            summary.messages += len(lines)
            bundle.write_json(f"transcripts/{c.id}.json", {
                "conversation": conversation_json(c),
                "buyer": profile.number, "messages": messages})
            conversation_rows.append([
                c.id, profile.number, c.our_number, c.city, c.persona, c.scenario, c.version,
                c.status, c.outcome or "", iso(c.started_at), iso(c.last_activity),
                c.messages_in, c.messages_out, json.dumps(c.captured, ensure_ascii=False),
                " ".join(c.tags), "" if c.deterrence is None else iso(c.deterrence.at) or "",
                "" if c.deterrence is None else c.deterrence.link or ""])
            summary.conversations += 1
    profile_json = []
    for p in profiles:
        data = p.as_json()
        for photo in data["photos"]:
            photo["file"] = media_files.get(photo["sha256"] or "")
        profile_json.append(data)
    bundle.write_json("profiles.json", profile_json)
    bundle.write_csv("profiles.csv", PROFILE_COLUMNS, [_profile_row(p) for p in profiles])
    bundle.write_csv("conversations.csv", [
        "conversation_id", "buyer", "our_number", "city", "persona", "scenario", "version",
        "status", "outcome", "started_at", "last_activity", "messages_in", "messages_out",
        "captured", "tags", "deterrence_at", "deterrence_link"], conversation_rows)
    bundle.write_csv("messages.csv", ["conversation_id", "at", "direction", "from", "to",
                                      "text", "kind", "status", "photos"], message_rows)
    summary.buyers = len(profiles)
    summary.media = len(media_files)
    summary.files = len(bundle.files)
    created_at = iso(now if now is not None else datetime.now(UTC).timestamp())
    manifest = {
        "format": FORMAT,
        "generator": generator_version(),
        "created_at": created_at,
        "filters": dict(filters),
        "time_range": {"first": iso(min(times)) if times else None,
                       "last": iso(max(times)) if times else None},
        "scenarios": [{"name": n, "version": v} for n, v in sorted(scenarios)],
        "counts": {"buyers": summary.buyers, "conversations": summary.conversations,
                   "messages": summary.messages, "media": summary.media},
        "missing_media": summary.missing_media,
        "files": [{"path": path, "sha256": digest, "size": size}
                  for path, (digest, size) in sorted(bundle.files.items())],
    }
    bundle.write_json(MANIFEST, manifest)
    summary.manifest_sha256 = bundle.files.pop(MANIFEST)[0]
    return summary


PROFILE_COLUMNS = [
    "number", "first_seen", "last_seen", "cities", "conversations", "messages_in",
    "messages_out", "captured", "photos", "valid", "type", "region", "place", "timezone",
    "carrier", "caller_name", "caller_type", "line_type", "outcomes", "deterrence_sent_at",
    "deterrence_links"]


def _profile_row(p: Profile) -> list[Any]:
    info = p.number_info or {}
    remote = (p.cached_lookups.get("caller_name") or {}).get("data", {})
    sent = [d for d in p.deterrence if d.status in ("sent", "delivered")]
    return [
        p.number, iso(p.first_seen), iso(p.last_seen), " ".join(p.cities),
        " ".join(str(c.id) for c in p.conversations), p.messages_in, p.messages_out,
        json.dumps(p.captured, ensure_ascii=False),
        " ".join(ph.sha256 or "" for ph in p.photos if ph.status == "stored"),
        "" if not info else ("yes" if info.get("valid") else "no"), info.get("type", ""),
        info.get("region", ""), info.get("place", ""), info.get("timezone", ""),
        info.get("carrier", ""), remote.get("name", ""), remote.get("caller_type", ""),
        remote.get("line_type", ""),
        " ".join(f"{k}:{v}" for k, v in sorted(p.outcomes.items())),
        " ".join(iso(d.at) or "" for d in sent),
        " ".join(sorted({d.link for d in p.deterrence if d.link}))]


def _copy_media(bundle: _Bundle, media_dir: Path, sha256: str, name: str) -> str | None:
    """Copy one stored media file into the bundle; a sentence if it cannot be."""
    source = media_path(media_dir, sha256)
    try:
        data = source.read_bytes()
    except OSError as exc:
        return f"cannot read {source}: {exc.strerror}"
    if hashlib.sha256(data).hexdigest() != sha256:
        return f"{source} does not match its SHA-256 (changed on disk): left out"
    bundle.write(name, data)
    return None


# -- verification


@dataclass(slots=True)
class Verification:
    ok: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    signature: str | None = None
    """Why the signature fails (None: it is valid)."""
    counts: list[str] = field(default_factory=list)
    """Counts of the manifest that the bundle's files contradict."""
    signer: str | None = None
    """The fingerprint of the key that made a valid signature."""
    trusted: bool = False
    """The signature was checked against the trusted key given, and made by it."""

    @property
    def valid(self) -> bool:
        return not (self.missing or self.altered or self.extra or self.signature
                    or self.counts)

    def problems(self) -> list[str]:
        return ([f"signature: {self.signature}"] if self.signature else []) + [
            f"counts: {c}" for c in self.counts] + ([f"missing: {p}" for p in self.missing]
                + [f"altered: {p} (its SHA-256 differs from the manifest)" for p in self.altered]
                + [f"extra: {p} (not in the manifest)" for p in self.extra])


def verify(folder: Path, *, trusted: str | None = None) -> Verification:
    """Check a bundle: the signature of its manifest (made by the key of fingerprint `trusted`,
    when given), its counts, and every file against the manifest. Raises `ExportError` when
    the manifest itself is missing or unreadable."""
    manifest_path = folder / MANIFEST
    try:
        raw = manifest_path.read_bytes()
        manifest = json.loads(raw)
        entries = {e["path"]: e["sha256"] for e in manifest["files"]}
        if manifest.get("format") != FORMAT:
            raise ExportError(f"{manifest_path}: not an Intercept evidence manifest (format "
                              f"{manifest.get('format')!r}, expected {FORMAT!r})")
    except OSError as exc:
        raise ExportError(f"{manifest_path}: cannot read the manifest: {exc.strerror}"
                          ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{manifest_path}: the manifest is damaged ({exc})") from None
    signed = check(folder, raw, trusted=trusted)
    result = Verification(signature=signed.problem, signer=signed.signer,
                          trusted=signed.trusted)
    for relative, digest in sorted(entries.items()):
        path = folder / relative
        if ".." in Path(relative).parts or Path(relative).is_absolute():
            result.altered.append(relative)
        elif not path.is_file():
            result.missing.append(relative)
        elif _sha256(path) != digest:
            result.altered.append(relative)
        else:
            result.ok.append(relative)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    result.extra = sorted(present - set(entries) - {MANIFEST, SIGNATURE})
    result.counts = _count_problems(folder, manifest, entries)
    return result


def _count_problems(folder: Path, manifest: Mapping[str, Any], entries: Mapping[str, str]
                    ) -> list[str]:
    """Where the manifest's counts differ from what its listed files hold."""
    found: dict[str, int | None] = {
        "conversations": sum(p.startswith("transcripts/") for p in entries),
        "media": sum(p.startswith("media/") for p in entries),
        "buyers": None, "messages": None}
    with contextlib.suppress(OSError, ValueError, TypeError):  # else named among the files
        found["buyers"] = len(json.loads((folder / "profiles.json").read_bytes()))
    messages = 0
    for relative in entries:
        if relative.startswith("transcripts/"):
            try:
                messages += len(json.loads((folder / relative).read_bytes())["messages"])
            except (OSError, ValueError, KeyError, TypeError):
                break
    else:
        found["messages"] = messages
    counts = manifest.get("counts")
    if not isinstance(counts, dict):
        return ["the manifest has no counts"]
    return [f"the manifest says {counts.get(name)} {name}, the bundle holds {value}"
            for name, value in found.items() if value is not None and counts.get(name) != value]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()
