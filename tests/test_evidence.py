"""Buyer profiles, evidence bundles and their verification, enrichment and deterrence by city,
with the shipped buyer scenario; outreach (victim) data never reaches a profile or a bundle."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from intercept.cli import main

from helpers import (
    BUYER,
    GENERAL_LINK,
    OTHER_BUYER,
    SEA_LINK,
    VICTIM,
    VICTIM_PHOTO,
    cli,
    populate,
)


async def test_one_profile_per_buyer_across_cities_with_what_he_said_and_deterrence(
        tmp_path, autojump_clock):
    data = await populate(tmp_path)
    result = cli(tmp_path, "buyers", "show", BUYER, "--json")
    assert result.exit_code == 0, result.output
    profile = json.loads(result.output)
    assert profile["number"] == BUYER
    assert [c["id"] for c in profile["conversations"]] == [data["sea"], data["atl"]]
    assert profile["cities"] == ["atlanta", "seattle"]
    assert profile["messages_in"] == 7
    assert profile["messages_out"] > 0
    assert profile["captured"]["when"] == ["tonight"]
    assert profile["captured"]["offer"] == ["100"]
    assert profile["captured"]["his_photo"] == ["https://media.example.com/1"]
    assert [p["sha256"] for p in profile["photos"]] == [data["photo"]]
    assert profile["photos"][0]["status"] == "stored"
    assert profile["outcomes"] == {"deterred": 2}
    links = {d["city"]: d["link"] for d in profile["deterrence"]}
    assert links == {"seattle": SEA_LINK, "atlanta": GENERAL_LINK}  # the city's own link
    assert all(d["sent"] and d["at"] for d in profile["deterrence"])
    info = profile["number_info"]  # enriched offline, off the message path
    assert info["valid"] and info["region"] == "US" and info["place"] == "Washington State"
    assert profile["conversations"][0]["lookups"]["number"]["region"] == "US"
    assert first_seen_order(profile)
    listing = cli(tmp_path, "buyers", "list")
    assert listing.exit_code == 0
    assert "+1••••••••99" in listing.output and BUYER not in listing.output
    assert "atlanta,seattle" in listing.output
    assert "1 numbers with buyer conversations are withheld" in listing.output
    full = cli(tmp_path, "buyers", "list", "--full-numbers", "--city", "washington-dc",
               "--json")
    (line,) = full.output.strip().splitlines()[:1]
    assert json.loads(line)["number"] == OTHER_BUYER


def first_seen_order(profile: dict[str, Any]) -> bool:
    return profile["first_seen"] <= profile["last_seen"]


async def test_the_victim_number_is_withheld_everywhere(tmp_path, autojump_clock):
    data = await populate(tmp_path)
    shown = cli(tmp_path, "buyers", "show", VICTIM)
    assert shown.exit_code == 1
    assert "also appears in outreach data" in shown.output
    out = tmp_path / "bundle"
    result = cli(tmp_path, "export", "--out", str(out))
    assert result.exit_code == 0, result.output
    everything = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert VICTIM.encode() not in everything and VICTIM[2:].encode() not in everything
    for body in data["outreach_texts"]:
        assert body.encode() not in everything, body
    assert b"price" not in everything  # the victim's text to the decoy
    assert VICTIM_PHOTO not in everything
    names = {p.name for p in (out / "media").iterdir()}
    assert names == {f"{data['photo']}.jpg"}
    transcripts = {p.stem for p in (out / "transcripts").iterdir()}
    assert transcripts == {str(data["sea"]), str(data["atl"]), str(data["dc"])}


async def test_a_bundle_verifies_and_any_change_is_named(tmp_path, autojump_clock):
    data = await populate(tmp_path)
    out = tmp_path / "bundle"
    result = cli(tmp_path, "export", "--out", str(out), "--city", "seattle")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "intercept-evidence/1"
    assert manifest["generator"].startswith("intercept ")
    assert manifest["scenarios"] == [{"name": "buyer-deterrence", "version": 3}]
    assert manifest["filters"] == {"city": "seattle", "since": None, "buyer": None}
    counts = manifest["counts"]
    assert (counts["buyers"], counts["conversations"], counts["media"]) == (1, 1, 1)
    assert counts["messages"] == len(json.loads(
        (out / f"transcripts/{data['sea']}.json").read_text())["messages"])
    assert manifest["time_range"]["first"] <= manifest["time_range"]["last"]
    files = {f["path"] for f in manifest["files"]}
    assert files == {"profiles.json", "profiles.csv", "conversations.csv", "messages.csv",
                     f"transcripts/{data['sea']}.json", f"media/{data['photo']}.jpg"}
    for entry in manifest["files"]:
        assert hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
    transcript = json.loads((out / f"transcripts/{data['sea']}.json").read_text())
    directions = [m["direction"] for m in transcript["messages"]]
    assert directions.count("in") == 4 and "out" in directions
    assert all(m["at"].endswith("Z") for m in transcript["messages"])
    assert transcript["messages"][-1]["direction"] == "out"
    assert SEA_LINK in " ".join(m["text"] for m in transcript["messages"])
    photos = [m["photos"] for m in transcript["messages"] if m.get("photos")]
    assert photos == [[f"media/{data['photo']}.jpg"]]
    csv_rows = (out / "profiles.csv").read_text().splitlines()
    assert csv_rows[0].startswith("number,first_seen") and csv_rows[1].startswith(BUYER)
    ok = CliRunner().invoke(main, ["export", "verify", str(out)])
    assert ok.exit_code == 0 and "OK, 6 files match" in ok.output
    for path in sorted(files):
        original = (out / path).read_bytes()
        (out / path).write_bytes(original + b" ")
        bad = CliRunner().invoke(main, ["export", "verify", str(out)])
        assert bad.exit_code == 1
        assert f"altered: {path}" in bad.output
        (out / path).write_bytes(original)
    (out / "profiles.csv").unlink()
    (out / "notes.txt").write_text("added later")
    bad = CliRunner().invoke(main, ["export", "verify", str(out)])
    assert bad.exit_code == 1
    assert "missing: profiles.csv" in bad.output and "extra: notes.txt" in bad.output
    audit = sqlite3.connect(tmp_path / "intercept.db").execute(
        "SELECT actor, role, action, detail FROM audit").fetchall()
    (actor, role, action, detail), = audit
    assert actor.startswith("cli:") and role == "cli" and action == "CLI intercept export"
    assert "city=seattle" in detail and "6 files" in detail
    assert manifest_digest(out) in detail
    refused = cli(tmp_path, "export", "--out", str(out))
    assert refused.exit_code == 1 and "not empty" in refused.output


def manifest_digest(out: Path) -> str:
    return hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()


async def test_export_filters_by_buyer_and_since(tmp_path, autojump_clock):
    data = await populate(tmp_path)
    out = tmp_path / "one"
    result = cli(tmp_path, "export", "--out", str(out), "--buyer", "(312) 555-0177")
    assert result.exit_code == 0, result.output
    profiles = json.loads((out / "profiles.json").read_text())
    assert [p["number"] for p in profiles] == [OTHER_BUYER]
    assert [c["id"] for c in profiles[0]["conversations"]] == [data["dc"]]
    detail = sqlite3.connect(tmp_path / "intercept.db").execute(
        "SELECT detail FROM audit").fetchone()[0]
    assert OTHER_BUYER not in detail and "buyer=+1••••••••77" in detail
    later = tmp_path / "later"
    since = "2999-01-01"
    result = cli(tmp_path, "export", "--out", str(later), "--since", since)
    assert result.exit_code == 0
    assert json.loads((later / "profiles.json").read_text()) == []


@pytest.mark.parametrize("city", ["seattle", "atlanta", "washington-dc"])
def test_the_shipped_cities_carry_their_deterrence_link(city):
    from intercept.config import load_config
    from intercept.foundation.resources import default_config_path

    config = load_config(default_config_path(), environ={})
    link = config.cities[city].link
    assert link.startswith("https://")
    assert (link == SEA_LINK) == (city == "seattle")  # Seattle: its local class


def _verify(out: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["export", "verify", str(out), *args])


def _rewrite_manifest(out: Path, change: Any) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


async def test_every_tampering_of_a_signed_bundle_fails_verify(tmp_path, autojump_clock):
    import os
    import shutil

    from intercept.buyers.signing import fingerprint, load_public_key

    await populate(tmp_path)
    old = os.umask(0o022)
    try:
        (tmp_path / "bundle").mkdir(mode=0o755)  # an empty --out that exists: tightened
        made = cli(tmp_path, "export", "--out", str(tmp_path / "bundle"), "--city", "seattle")
    finally:
        os.umask(old)
    assert made.exit_code == 0, made.output
    key_file = tmp_path / "evidence-signing.key"
    public = tmp_path / "evidence-signing.key.pub"
    print_ = load_public_key(public)
    assert f"signed by the key of fingerprint {fingerprint(print_)}" in made.output
    assert "made the organisation's evidence signing key" in made.output
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "bundle").stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in (tmp_path / "bundle").rglob("*")
               if p.is_file())
    detail = sqlite3.connect(tmp_path / "intercept.db").execute(
        "SELECT detail FROM audit").fetchone()[0]
    assert f"signed by {fingerprint(print_)}; new signing key" in detail
    trusted = ("--public-key", str(public))
    ok = _verify(tmp_path / "bundle", *trusted)
    assert ok.exit_code == 0, ok.output
    assert "not checked against a trusted key" not in ok.output
    assert _verify(tmp_path / "bundle", "--fingerprint", fingerprint(print_)).exit_code == 0
    untrusted = _verify(tmp_path / "bundle")
    assert untrusted.exit_code == 0 and "not checked against a trusted key" in untrusted.output

    def fresh(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(tmp_path / "bundle", copy)
        return copy

    # 1. a file changed together with its hash line
    changed = fresh("changed")
    (changed / "profiles.csv").write_text("number\n+10000000000\n")
    new_digest = hashlib.sha256((changed / "profiles.csv").read_bytes()).hexdigest()
    _rewrite_manifest(changed, lambda m: [e.update(sha256=new_digest, size=25)
                                          for e in m["files"] if e["path"] == "profiles.csv"])
    # 2. a file deleted together with its entry
    deleted = fresh("deleted")
    photo = next(p for p in (deleted / "media").iterdir())
    photo.unlink()
    _rewrite_manifest(deleted, lambda m: m.update(
        files=[e for e in m["files"] if not e["path"].startswith("media/")]))
    # 3. counts edited
    counted = fresh("counted")
    _rewrite_manifest(counted, lambda m: m["counts"].update(messages=1))
    for bundle in (changed, deleted, counted):
        for args in ((), trusted):
            bad = _verify(bundle, *args)
            assert bad.exit_code == 1, (bundle.name, bad.output)
            assert "the manifest was changed after it was signed" in bad.output
    assert "counts: the manifest says 1 messages" in _verify(counted).output
    assert "counts: the manifest says 1 media, the bundle holds 0" in _verify(deleted).output
    # 4. re-signed by someone else's key after any of these edits
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from intercept.buyers.signing import sign

    other = Ed25519PrivateKey.generate()
    (changed / "manifest.sig").write_bytes(sign((changed / "manifest.json").read_bytes(), other))
    bad = _verify(changed, *trusted)
    assert bad.exit_code == 1
    assert f"signed by another key (fingerprint {fingerprint(other.public_key())})" in bad.output
    assert "not checked against a trusted key" in _verify(changed).output
    # an unsigned bundle fails
    (counted / "manifest.sig").unlink()
    assert "the bundle is not signed" in _verify(counted).output
    # a second export reuses the key, and says nothing of making one
    again = cli(tmp_path, "export", "--out", str(tmp_path / "again"))
    assert again.exit_code == 0 and "made the organisation" not in again.output
    assert _verify(tmp_path / "again", *trusted).exit_code == 0


async def test_buyers_show_escapes_what_outsiders_wrote(tmp_path, autojump_clock):
    await populate(tmp_path)
    name = "EVIL\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J \u202egpj.exe"
    with sqlite3.connect(tmp_path / "intercept.db") as db:  # a spoofed caller name
        db.execute("INSERT INTO lookup_cache (number, kind, provider, data, fetched_at, "
                   "expires_at) VALUES (?, 'caller_name', 'twilio', ?, 0, 9e9)",
                   (BUYER, json.dumps({"caller_name": name})))
    result = cli(tmp_path, "buyers", "show", BUYER)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output
    assert "EVIL\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J \\u202egpj.exe" in result.output
    as_json = cli(tmp_path, "buyers", "show", BUYER, "--json")
    assert "\u202e" not in as_json.output
    assert json.loads(as_json.output)["lookups"]["caller_name"]["data"]["caller_name"] == name


async def test_buyers_list_counts_photos_that_did_not_download(tmp_path, autojump_clock):
    data = await populate(tmp_path)
    with sqlite3.connect(tmp_path / "intercept.db") as conn:
        conn.execute("UPDATE media SET status = 'failed' WHERE conversation_id = ?",
                     (data["sea"],))
    listing = cli(tmp_path, "buyers", "list")
    assert listing.exit_code == 0, listing.output
    header, *rows = listing.output.splitlines()
    (row,) = [r for r in rows if r.startswith("+1••••••••99")]
    column = header.index("PHOTOS")
    assert row[column:column + 6] == "0 of 1"


async def test_an_export_names_its_case_and_recipient_in_the_signed_manifest(tmp_path,
                                                                           autojump_clock):
    await populate(tmp_path)
    out = tmp_path / "case"
    result = cli(tmp_path, "export", "--out", str(out), "--case", " SPD-2024-1234 ",
                 "--recipient", "Det. R. Diaz, SPD Vice")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["case"], manifest["recipient"]) == ("SPD-2024-1234",
                                                         "Det. R. Diaz, SPD Vice")
    checked = _verify(out)
    assert checked.exit_code == 0, checked.output
    assert f"{out}: case SPD-2024-1234, for Det. R. Diaz, SPD Vice" in checked.output
    detail = sqlite3.connect(tmp_path / "intercept.db").execute(
        "SELECT detail FROM audit ORDER BY id DESC").fetchone()[0]
    assert "case=SPD-2024-1234" in detail and "recipient=Det. R. Diaz, SPD Vice" in detail
    plain = tmp_path / "plain"
    assert cli(tmp_path, "export", "--out", str(plain)).exit_code == 0
    manifest = json.loads((plain / "manifest.json").read_text())
    assert manifest["case"] is None and manifest["recipient"] is None
