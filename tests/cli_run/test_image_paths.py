"""Image files named in a chat message (``ollama run``'s way): read and taken out of the text;
paths of missing files, and words that only look like paths, stay."""

from __future__ import annotations

from pathlib import Path

from power_core.cli.image_paths import images_in


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
