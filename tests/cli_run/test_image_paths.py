"""Image files named in a chat message (``ollama run``'s way): read and taken out of the text;
paths of missing files, and words that only look like paths, stay."""

from __future__ import annotations

from pathlib import Path

from power_core.cli.image_paths import images_in, starts_with_image


def test_named_image_files_are_read_and_left_out_of_the_text(tmp_path: Path) -> None:
    first = tmp_path / "cat.png"
    first.write_bytes(b"png bytes")
    spaced = tmp_path / "my photo.JPG"
    spaced.write_bytes(b"jpeg bytes")
    text, images = images_in(f"Compare {first} with '{spaced}', please.")
    assert text == "Compare with , please."
    assert images == [(str(first), b"png bytes"), (str(spaced), b"jpeg bytes")]


def test_missing_files_and_other_words_stay(tmp_path: Path) -> None:
    message = f"Is {tmp_path}/missing.png there? see a.png and /etc/passwd"
    assert images_in(message) == (message, [])
    folder = tmp_path / "dir.png"
    folder.mkdir()
    assert images_in(f"look {folder}") == (f"look {folder}", [])


def test_a_path_is_found_after_slashes_that_are_no_path(tmp_path: Path) -> None:
    cat = tmp_path / "cat.png"
    cat.write_bytes(b"png")
    for before in ("and/or what is in", "1/2 of", "see https://x.org/a and", "What's in"):
        text, images = images_in(f"{before} {cat}?")
        assert images == [(str(cat), b"png")], before
        assert text == f"{before} ?"
    text, images = images_in(f"(see {cat}) and '{cat}'.")
    assert [name for name, _ in images] == [str(cat), str(cat)]
    assert text == "(see ) and ."


def test_a_path_with_escaped_spaces_as_a_terminal_writes_a_dropped_file(tmp_path: Path) -> None:
    picture = tmp_path / "cat pic (1).png"
    picture.write_bytes(b"png")
    escaped = str(picture).replace(" ", "\\ ").replace("(", "\\(").replace(")", "\\)")
    text, images = images_in(f"{escaped} what is this?")
    assert images == [(str(picture), b"png")]
    assert text == "what is this?"


def test_a_line_starts_with_an_image_only_when_its_first_word_is_one(tmp_path: Path) -> None:
    picture = tmp_path / "cat pic.png"
    picture.write_bytes(b"png")
    escaped = str(picture).replace(" ", "\\ ")
    assert starts_with_image(f"{escaped} what is this?")
    assert starts_with_image(f"'{picture}' and this?")
    assert not starts_with_image(f"/sett see {escaped}")  # a mistyped command stays one
    assert not starts_with_image(f"{tmp_path}/missing.png what?")
