"""files.py: atomic writes and the generated blocks of the docs."""
import pytest

import files


def test_atomic_write_leaves_the_old_file_on_error_and_names_temporaries_uniquely(tmp_path):
    path = tmp_path / "cache.bin"
    with files.atomic_write(path) as file:
        file.write(b"old")
    with pytest.raises(RuntimeError):
        with files.atomic_write(path) as file:
            file.write(b"half")
            raise RuntimeError("killed midway")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["cache.bin"]
    with files.atomic_write(path) as first, files.atomic_write(path) as second:  # two writers at once
        assert len(list(tmp_path.glob(".cache.bin.*.tmp"))) == 2  # each its own temporary
        first.write(b"first")
        second.write(b"second")
    assert path.read_bytes() == b"first"  # the last to finish (first: the outer one) wins, whole
    assert path.stat().st_mode & 0o777 != 0o600  # readable by others, as any file of the umask


def test_replace_block_rewrites_only_between_its_markers(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text("# title\n<!-- table: begin -->\nold\n<!-- table: end -->\nafter\n")
    files.replace_block(doc, "table", "| a |\n| 1 |\n")
    assert doc.read_text() == "# title\n<!-- table: begin -->\n| a |\n| 1 |\n<!-- table: end -->\nafter\n"
    with pytest.raises(ValueError, match="needs one line '<!-- other: begin -->'"):
        files.replace_block(doc, "other", "x")
