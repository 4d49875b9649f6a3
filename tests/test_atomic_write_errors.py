"`atomic_write` names its file in a full disk's error, and leaves the caller's other errors their own words (ap28 c15)."
import errno
import pytest
from phi1_nb.shards import atomic_write


def test_a_callers_error_keeps_its_words(tmp_path):
    with pytest.raises(OSError) as e:
        with atomic_write(tmp_path / "a.jsonl") as f: f.write(b"x"); raise OSError("mount /data went away")
    assert str(e.value) == "mount /data went away" and e.value.filename is None
    assert list(tmp_path.iterdir()) == []   # no temp file left


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS])
def test_a_full_disk_says_which_file(tmp_path, code):
    with pytest.raises(OSError) as e:
        with atomic_write(tmp_path / "a.jsonl") as f: raise OSError(code, "no room")
    assert e.value.filename == str(tmp_path / "a.jsonl") and e.value.errno == code


def test_a_read_error_with_a_name_keeps_it(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        with atomic_write(tmp_path / "a.jsonl") as f: open(tmp_path / "missing-input.jsonl")
    assert e.value.filename == str(tmp_path / "missing-input.jsonl")
