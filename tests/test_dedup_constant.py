"A copy whose one string literal changed case is a copy (gen2 `constant`); codec siblings one string apart stay apart."
import pytest
from phi1_nb.dedup import find_duplicates

SUB = '''def _subwidget_name(self,name):
    """Get a subwidget name (returns a String, not a Widget !)"""
    try:
        return self.tk.call(self._w, 'subwidget', name)
    except TclError:
        return None
'''
HAS = '''def _is_descriptor(tp, name):
    try:
        tp = type(tp)
    except TypeError:
        return False
    return hasattr(tp, "__set__") or hasattr(tp, "__delete__")
'''
CODEC = '''def getregentry():
    return codecs.CodecInfo(
        name={n!r},
        encode=Codec().encode,
        decode=Codec().decode,
        incrementalencoder=IncrementalEncoder,
        incrementaldecoder=IncrementalDecoder,
    )
'''

def _merged(a:str, b:str) -> bool:
    return bool(find_duplicates([a, b], threshold=0.8, shingles="ast")["duplicate_of"])

@pytest.mark.parametrize("a,b", [(SUB, SUB.replace("'subwidget'", "'SUBWIDGET'")),
                                 (HAS, HAS.replace('"__set__"', "'__SET__'")),
                                 (CODEC.format(n="iso8859-7"), CODEC.format(n="ISO8859-7"))])
def test_a_string_upper_cased_is_a_copy(a, b):
    assert a != b and _merged(a, b)

@pytest.mark.parametrize("m", ["iso8859-8", "mac-latin2", "cp1252"])
def test_codec_siblings_one_string_apart_stay_apart(m):
    assert not _merged(CODEC.format(n="iso8859-7"), CODEC.format(n=m))
