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

Only buyer data goes in: conversations admitted by `store.reads.buyer_conversation_ids`
(never an outreach conversation, nor a number found in ads or texted by outreach). `verify`
names every file that is missing, altered (its SHA-256 differs) or extra.
"""

from __future__ import annotations

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
from typing import Any

from ..media import media_path
from ..store.reads import transcript
from .profiles import Profile, buyer_profiles, conversation_json, iso

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
                  filters: Mapping[str, Any], city_of: Mapping[str, str] | None = None,
                  now: float | None = None) -> ExportSummary:
    """Write the bundle of buyer conversations `ids` (from `profiles.selected_conversations`)
    into `out`, which must not exist or be empty. On any error the folder is removed."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: the folder exists and is not empty; give a new folder")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return _export(conn, ids, out, media_dir, filters, city_of, now)
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

    @property
    def valid(self) -> bool:
        return not (self.missing or self.altered or self.extra)

    def problems(self) -> list[str]:
        return ([f"missing: {p}" for p in self.missing]
                + [f"altered: {p} (its SHA-256 differs from the manifest)" for p in self.altered]
                + [f"extra: {p} (not in the manifest)" for p in self.extra])


def verify(folder: Path) -> Verification:
    """Check every file of a bundle against its manifest. Raises `ExportError` when the
    manifest itself is missing or unreadable."""
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = {e["path"]: e["sha256"] for e in manifest["files"]}
        if manifest.get("format") != FORMAT:
            raise ExportError(f"{manifest_path}: not an Intercept evidence manifest (format "
                              f"{manifest.get('format')!r}, expected {FORMAT!r})")
    except OSError as exc:
        raise ExportError(f"{manifest_path}: cannot read the manifest: {exc.strerror}"
                          ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{manifest_path}: the manifest is damaged ({exc})") from None
    result = Verification()
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
    result.extra = sorted(present - set(entries) - {MANIFEST})
    return result


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()
