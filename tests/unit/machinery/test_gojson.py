"""Go encoding/json's errors for bytes unmarshalled into a map (a Secret's
.dockerconfigjson), as upstream's validation quotes them."""

import pytest

from kybern.machinery.gojson import unmarshal_map_error


@pytest.mark.parametrize("data,error", [
    (b'{"auths":{"r":{"auth":"dTpw"}}}\n', None),
    (b"null", None),
    (b"{bad\n", "invalid character 'b' looking for beginning of object key string"),
    (b"", "unexpected end of JSON input"),
    (b'{"a"', "unexpected end of JSON input"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a":1 x', "invalid character 'x' after object key:value pair"),
    (b'{"a":[1 2]}', "invalid character '2' after array element"),
    (b"{} {}", "invalid character '{' after top-level value"),
    (b"nul", "invalid character ' ' in literal null (expecting 'l')"),
    (b'{"a":tru}', "invalid character '}' in literal true (expecting 'e')"),
    (b'{"a":1.}', "invalid character '}' after decimal point in numeric literal"),
    (b'{"a":"\x01"}', "invalid character '\\x01' in string literal"),
    (b"'", "invalid character '\\'' looking for beginning of value"),
    (b"[]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    (b'"x"', "json: cannot unmarshal string into Go value of type map[string]interface {}"),
])
def test_unmarshal_map_error(data, error):
    assert unmarshal_map_error(data) == error
