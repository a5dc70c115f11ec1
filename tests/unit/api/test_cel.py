"""The CEL environment (kybern.api.cel) and CRD validation rules
(kybern.api.celvalidation) without a server: what rules evaluate to, the
Kubernetes library functions, error wording, compile checks."""

from __future__ import annotations

import pytest

from kybern.api import cel, celvalidation

V = frozenset({"self", "oldSelf"})


def run(expr: str, self: object) -> object:
    return cel.from_cel(cel.compile(expr, V).run({"self": cel.to_cel(self)}))


@pytest.mark.parametrize("expr,want", [
    ("has(self.a) && !has(self.zz)", True),
    ("self.l.all(x, x > 0) && self.l.exists(x, x == 2) && self.l.exists_one(x, x == 3)", True),
    ("self.l.map(x, x * 2)", [2, 4, 6]),
    ("self.l.filter(x, x > 1)", [2, 3]),
    ("size(self.l) == 3 && self.s.size() == 5", True),
    ("self.s.startsWith('He') && self.s.endsWith('lo') && self.s.contains('ll')", True),
    ("self.s.matches('^H[a-z]+$')", True),
    ("self.s.lowerAscii() + self.s.upperAscii()", "helloHELLO"),
    ("'a,b,c'.split(',')", ["a", "b", "c"]),
    ("['a', 'b'].join('-')", "a-b"),
    ("self.s.indexOf('l') == 2 && self.s.lastIndexOf('l') == 3", True),
    ("self.s.substring(1, 3) + self.s.charAt(0)", "elH"),
    ("' x '.trim() + 'abc'.replace('b', 'B')", "xaBc"),
    ("self.l.sum() == 6 && self.l.min() == 1 && self.l.max() == 3 && self.l.isSorted()", True),
    ("'abc 123 def 456'.findAll('[0-9]+')", ["123", "456"]),
    ("'%s is %d'.format(['x', 3])", "x is 3"),
    ("quantity('1Gi').isGreaterThan(quantity('1000Mi')) && quantity('500m').compareTo(quantity('0.5')) == 0",
     True),
    ("quantity('2k').add(quantity('1k')).asInteger()", 3000),
    ("isQuantity('1Gi') && !isQuantity('1 Gi')", True),
    ("url('https://u:p@example.com:8443/a/b?x=1&x=2').getHostname()", "example.com"),
    ("url('https://example.com:8443/a').getPort() + url('https://example.com/a/b').getEscapedPath()",
     "8443/a/b"),
    ("url('https://example.com/?x=1&x=2').getQuery()", {"x": ["1", "2"]}),
    ("isURL('https://example.com') && !isURL('example.com')", True),
    ("ip('10.1.2.3').family() == 4 && ip('::1').isLoopback() && isIP('fe80::1') && !isIP('10.0.0')", True),
    ("cidr('10.0.0.0/8').containsIP(ip('10.9.9.9')) && cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')", True),
    ("cidr('192.168.1.5/24').prefixLength() == 24 && isCIDR('::/0') && !isCIDR('10.0.0.1')", True),
    ("self.m.all(k, k.startsWith('k'))", True),
    ("self.n < 4 ? 'small' : 'big'", "small"),
    (("sets.contains(self.l, [1, 3]) && !sets.contains(self.l, [4]) && sets.equivalent(self.l, [3, 2, 1]) && "
      "sets.intersects(self.l, [9, 2]) && self.s.contains('ell')"), True),
    (("string(quantity('1.5Gi')) + ' ' + string(ip('10.0.0.1')) + ' ' + string(cidr('10.0.0.0/8')) + ' ' + "
      "string(url('https://x/y')) + ' ' + string(cidr('10.1.2.3/8').masked())"),
     "1.5Gi 10.0.0.1 10.0.0.0/8 https://x/y 10.0.0.0/8"),
    ("cel.bind(x, self.l.filter(i, i > 1), x.size() == 2 && cel.bind(y, x[0] * 10, y == 20))", True),
    ("strings.quote('a\"b\\n') + strings.quote(self.s)", '"a\\"b\\n""Hello"'),
    ("self.n == 3.0 && self.n < 3.5 && 2.5 < self.n && self.n != 4.0 && 1 == 1", True),
])
def test_expressions(expr, want):
    assert run(expr, {"a": 1, "l": [1, 2, 3], "s": "Hello", "m": {"k1": 1, "k2": 2}, "n": 3}) == want


@pytest.mark.parametrize("expr,msg", [
    ("self.zz == 1", "no such key: zz"),
    ("self.n / 0 == 1", "division by zero"),
    ("self.s + 1 == 'x'", "no such overload"),
    ("quantity('x') == quantity('1')", "quantities must match the regular expression"),
])
def test_runtime_errors(expr, msg):
    with pytest.raises(cel.EvalError, match=msg):
        run(expr, {"n": 1, "s": "x"})


@pytest.mark.parametrize("expr,msg", [
    ("self.", "Syntax error"),
    ("self.a ==", "Syntax error"),
    ("other == 1", "undeclared reference to 'other'"),
    ("self.nosuchFunction()", "undeclared reference to 'nosuchFunction'"),
])
def test_compile_errors(expr, msg):
    with pytest.raises(cel.CompileError, match=msg):
        cel.compile(expr, V)


def test_macro_variables_are_declared():
    cel.compile("self.l.all(item, item.exists(x, x == 1)) && self.m.map(k, k).size() > 0", V)


def test_programs_are_compiled_once():
    assert cel.compile("self.x == 1", V) is cel.compile("self.x == 1", V)


SCHEMA = {"type": "object", "properties": {"spec": {
    "type": "object",
    "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min must not exceed max"},
                                 {"rule": "self.ratio < 1.5"}],
    "properties": {
        "min": {"type": "integer"}, "max": {"type": "integer"}, "ratio": {"type": "number"},
        "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf",
                                                                  "reason": "FieldValueForbidden",
                                                                  "message": "name is immutable"}]},
        "when": {"type": "string", "format": "date-time",
                 "x-kubernetes-validations": [{"rule": "self > timestamp('2020-01-01T00:00:00Z')"}]},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "properties": {
                      "name": {"type": "string"},
                      "port": {"type": "integer", "x-kubernetes-validations": [
                          {"rule": "self == oldSelf", "message": "port is immutable"}]}}}},
        "labels": {"type": "object", "additionalProperties": {
            "type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 5"}]}},
    }}}}


def test_validator_paths_messages_and_types():
    v = celvalidation.Validator.build(SCHEMA)
    assert v is not None
    w: list[str] = []
    causes = v.validate({"spec": {"min": 3, "max": 2, "ratio": 2, "when": "2019-01-01T00:00:00Z",
                                  "labels": {"a": "toolong"}}}, None, w)
    assert [(c["field"], c["message"]) for c in causes] == [
        ("spec", 'Invalid value: "object": min must not exceed max'),
        ("spec", 'Invalid value: "object": failed rule: self.ratio < 1.5'),
        ("spec.when", "Invalid value: \"string\": failed rule: self > timestamp('2020-01-01T00:00:00Z')"),
        ("spec.labels[a]", 'Invalid value: "string": failed rule: self.size() < 5'),
    ]
    assert w == []


def test_transition_rules_correlate_old_values():
    v = celvalidation.Validator.build(SCHEMA)
    assert v is not None
    old = {"spec": {"min": 1, "max": 2, "ratio": 1, "name": "a",
                    "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}}
    new = {"spec": {"min": 1, "max": 2, "ratio": 1, "name": "b",
                    "ports": [{"name": "https", "port": 8443}, {"name": "new", "port": 1}, {"name": "http",
                                                                                           "port": 80}]}}
    causes = v.validate(new, old, [])
    assert [(c["field"], c["type"], c["message"]) for c in causes] == [
        ("spec.name", "FieldValueForbidden", "Forbidden: name is immutable"),
        ("spec.ports[0].port", "FieldValueInvalid", 'Invalid value: "integer": port is immutable'),
    ]
    assert v.validate(new, None, []) == []  # no old object: transition rules do not run


def test_ratcheting_unchanged_invalid_values_warn():
    v = celvalidation.Validator.build(SCHEMA)
    assert v is not None
    old = {"spec": {"min": 3, "max": 2, "ratio": 1}}
    w: list[str] = []
    assert v.validate({"spec": {"min": 3, "max": 2, "ratio": 1}}, old, w) == []
    assert w == ['spec: Invalid value: "object": min must not exceed max']
    assert len(v.validate({"spec": {"min": 4, "max": 2, "ratio": 1}}, old, [])) == 1
    # a rule that cannot run is an error even on an unchanged value
    assert "no such key: ratio evaluating rule: self.ratio < 1.5" in \
        v.validate({"spec": {"min": 1, "max": 2}}, {"spec": {"min": 1, "max": 2}}, [])[0]["message"]


def test_no_rules_no_validator():
    assert celvalidation.Validator.build({"type": "object", "properties": {"spec": {"type": "object"}}}) is None
    assert celvalidation.crd_causes({"type": "object"}, "x") == []


def test_crd_causes():
    schema = {"type": "object", "x-kubernetes-validations": [
        {"rule": "self.a >"}, {"rule": "true", "message": "a\nb"}, {"rule": "true", "reason": "Nope"},
        {"rule": "true", "fieldPath": ".missing"}, {"rule": "self == oldSelf", "optionalOldSelf": False},
        {"rule": "true", "optionalOldSelf": True}, {"rule": "1 == 1", "messageExpression": "self."}],
        "properties": {"a": {"type": "integer"}}}
    causes = celvalidation.crd_causes(schema, "p")
    fields = [c["field"] for c in causes]
    assert fields == ["p.x-kubernetes-validations[0].rule", "p.x-kubernetes-validations[1].message",
                      "p.x-kubernetes-validations[2].reason", "p.x-kubernetes-validations[3].fieldPath",
                      "p.x-kubernetes-validations[5].optionalOldSelf",
                      "p.x-kubernetes-validations[6].messageExpression"]
    assert "compilation failed: ERROR: <input>:1:" in causes[0]["message"]
    assert causes[0]["message"].startswith('Invalid value: apiextensions.ValidationRule{Rule:"self.a >"')


def test_admission_variables_and_authorizer():
    prog = cel.compile("request.operation == 'CREATE' && oldObject == null && object.metadata.name == 'p' && "
                       "authorizer.group('apps').resource('deployments').namespace('ns').check('create')"
                       ".allowed() && authorizer.requestResource.check('get').reason() == ''",
                       {"object", "oldObject", "request", "authorizer"})
    act = {"object": cel.to_cel({"metadata": {"name": "p"}}), "oldObject": None,
           "request": cel.to_cel({"operation": "CREATE"}),
           "authorizer": cel.authorizer({"group": "", "resource": "pods"})}
    assert prog.run(act) is not None and cel.is_true(prog.run(act))


def test_undefined_fields_are_compile_errors():
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "a": {"type": "integer"}, "m": {"type": "object", "additionalProperties": {"type": "string"}},
        "any": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}},
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.size() < 10 && self.kind == 'X' && self.spec.m.anything == ''"},
            {"rule": "has(self.spec.any.whatever) && self.spec.a > 0"},
            {"rule": "self.spec.b == 1"},
            {"rule": "self.metadata.labels.size() > 0"}]}
    causes = celvalidation.crd_causes(schema, "s.openAPIV3Schema")
    assert [c["field"] for c in causes] == ["s.openAPIV3Schema.x-kubernetes-validations[2].rule",
                                            "s.openAPIV3Schema.x-kubernetes-validations[3].rule"]
    assert "compilation failed: ERROR: <input>:1:10: undefined field 'b'\n | self.spec.b == 1\n | .........^" \
        in causes[0]["message"]
    assert "undefined field 'labels'" in causes[1]["message"]


def test_ratcheting_inside_uncorrelatable_lists_uses_the_list():
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {
        "type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 4"}]}}}}
    v = celvalidation.Validator.build(schema)
    assert v is not None
    w: list[str] = []
    assert v.validate({"tags": ["toolong"]}, {"tags": ["toolong"]}, w) == [] and len(w) == 1
    assert [c["field"] for c in v.validate({"tags": ["toolong", "a"]}, {"tags": ["toolong"]}, [])] == ["tags[0]"]


def test_syntax_beyond_cel_python_is_accepted_and_not_evaluated():
    for expr in ("math.greatest([1, 2]) == 2", "[?self.?a].size() == 1", "format.dns1123Label().validate(self.s)"):
        with pytest.raises(cel.Unsupported):
            cel.compile(expr, V)
    cel.compile("self.s.matches('^a.?b[?]$')", V)  # inside a string it is no optional syntax
    schema = {"type": "object", "properties": {"a": {"type": "integer"}},
              "x-kubernetes-validations": [{"rule": "math.least([self.a, 5]) < 5"}, {"rule": "self.a < 3"}]}
    assert celvalidation.crd_causes(schema, "p") == []
    v = celvalidation.Validator.build(schema)
    assert v is not None
    msgs = [c["message"] for c in v.validate({"a": 9}, None, [])]
    assert msgs == ['Invalid value: "object": failed rule: self.a < 3']


@pytest.mark.parametrize("expr", [
    "self.?a.?b[?0].orValue(1) == 5",
    "self.?a.b[0].orValue(1) == 5",          # selections after an optional stay optional
    "self.?x.orValue(7) == 7 && !self.?a.?zz.hasValue()",
    "self.l[?5].orValue(0) == 0 && self.m[?'k'].value() == 'v'",
    "optional.of(1).value() == 1 && optional.none().orValue(3) == 3",
    "self.?x.or(optional.of(4)).value() == 4 && !optional.ofNonZeroValue('').hasValue()",
    "self.?a == optional.of(self.a)",
])
def test_optional_syntax(expr):
    assert run(expr, {"a": {"b": [5]}, "l": [1, 2], "m": {"k": "v"}}) is True


def test_optional_none_dereference_is_an_error():
    with pytest.raises(cel.EvalError, match="optional.none\\(\\) dereference"):
        run("self.?x.value() == 1", {})
