"""Loki pushes as entries: label sets in Prometheus' syntax, and how labels, structured metadata and
lines give the service, the level, the metadata and the id."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logsvc.domain.entries import Limits, NewEntry, format_log_id
from logsvc.domain.labels import parse_labels
from logsvc.domain.loki import LokiPush, loki_entries
from logsvc.domain.timestamps import parse_timestamp
from logsvc.errors import FieldError, PayloadTooLarge, ValidationFailed
from tests.loki_push import push_request

NS = 1_700_000_000_123_456_789
NOW_US = 1_800_000_000_000_000


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ('{app="api"}', [("app", "api")]),
        ('{app="api", env="prod"}', [("app", "api"), ("env", "prod")]),
        ('  { a = "1" ,b="2", }  ', [("a", "1"), ("b", "2")]),
        ("{}", []),
        ('{path="C:\\\\logs\\\\app.log"}', [("path", "C:\\logs\\app.log")]),
        ('{msg="say \\"hi\\"\\n\\ttab"}', [("msg", 'say "hi"\n\ttab')]),
        ('{v="\\a\\b\\f\\r\\v"}', [("v", "\a\b\f\r\v")]),
        ('{v="\\x41\\101\\u00e9\\U0001F600"}', [("v", "AAé😀")]),
        ('{v="\\xc3\\xa9"}', [("v", "é")]),  # bytes, UTF-8 once unescaped
        ("{v=`raw \\n text`}", [("v", "raw \\n text")]),
        ('{_x9="é 😀 , } ="}', [("_x9", "é 😀 , } =")]),
    ],
)
def test_label_sets_are_read_as_go_reads_their_strings(text: str, pairs: list[tuple[str, str]]) -> None:
    assert list(parse_labels(text)) == pairs


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('app="api"', "must start with {"),
        ('{app="api"', "needs a comma or }"),
        ('{app="api"} x', "has more after its closing }"),
        ('{9app="x"}', "has no label name at character 2"),
        ('{app-name="x"}', "has no = after its name"),
        ("{app=api}", "needs a value in double quotes"),
        ('{app="a" env="b"}', "needs a comma or } after label app"),
        ('{app="a", app="b"}', "label app appears twice"),
        ('{v="\\q"}', "an escape Go does not have: \\q"),
        ('{v="\\400"}', "past \\377"),
        ('{v="\\ud800"}', "no Unicode character"),
        ('{v="\\xff"}', "not UTF-8 once unescaped"),
        ('{v="line\nbreak"}', "needs a value in double quotes"),
        ('{v="unclosed}', "needs a value in double quotes"),
    ],
)
def test_label_sets_that_are_not_are_named(text: str, problem: str) -> None:
    with pytest.raises(
        ValueError, match=problem.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")
    ):
        parse_labels(text)


names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)
# Go's string literals take JSON's escapes but not its surrogate pairs: characters of the BMP only.
values = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=20)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(labels=st.dictionaries(names, values, max_size=5))
def test_any_label_set_written_with_json_escapes_reads_back(labels: dict[str, str]) -> None:
    """JSON's string escapes (\\" \\\\ \\n \\t \\uXXXX ...) are a subset of Go's, so json.dumps is a
    reference writer of label values."""
    text = "{" + ", ".join(
        f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in labels.items()
    )
    assert dict(parse_labels(text + "}")) == labels
    ascii_only = "{" + ",".join(f"{name}={json.dumps(value)}" for name, value in labels.items()) + "}"
    assert dict(parse_labels(ascii_only)) == labels


def _json(*streams: dict[str, object]) -> bytes:
    return msgspec.json.encode({"streams": list(streams)})


def _docs(body: bytes, *, as_json: bool = True, limits: Limits | None = None) -> LokiPush:
    return loki_entries(body, as_json=as_json, limits=limits or Limits(), now_us=NOW_US)


def _entries(body: bytes, *, as_json: bool = True) -> list[NewEntry]:
    """The entries of a push all of whose entries keep the rules."""
    outcomes = _docs(body, as_json=as_json).outcomes
    assert all(isinstance(found, NewEntry) for found in outcomes), outcomes
    return [found for found in outcomes if isinstance(found, NewEntry)]


def _metadata(entry: NewEntry) -> object:
    return None if entry.metadata is None else json.loads(entry.metadata)


@pytest.mark.parametrize(
    ("labels", "service", "rest"),
    [
        ({"job": "varlogs", "app": "shop"}, "shop", {"job": "varlogs"}),
        ({"container": "c", "job": "j", "application": "a"}, "a", {"container": "c", "job": "j"}),
        ({"service": "s", "service_name": "n"}, "n", {"service": "s"}),
        ({"container": "web"}, "web", {}),
        ({"host": "h1"}, None, {"host": "h1"}),
    ],
)
def test_the_service_is_the_first_of_its_labels(
    labels: dict[str, str], service: str | None, rest: dict[str, str]
) -> None:
    (entry,) = _entries(_json({"stream": labels, "values": [[str(NS), "x"]]}))
    assert entry.service_name == (service or "default")
    assert _metadata(entry) == ({"labels": rest} if rest else None)


@pytest.mark.parametrize(
    ("labels", "metadata", "line", "level"),
    [
        ({"level": "warn", "severity": "error"}, None, "level=debug", "WARN"),
        ({"severity": "critical"}, None, "x", "FATAL"),
        ({"detected_level": "dbg", "level": "notice"}, None, "level=error", "ERROR"),  # neither names one
        ({"level": "notice"}, {"detected_level": "info"}, "level=error", "INFO"),
        ({"a": "b"}, {"severity": "Warning"}, "x", "WARN"),
        ({"a": "b"}, None, "ts=1 level=error msg=boom", "ERROR"),
        ({"a": "b"}, None, 'level="WARN" msg=x', "WARN"),
        ({"a": "b"}, None, "nolevel=error msg=x", None),
        ({"a": "b"}, None, '{"level": "debug", "msg": "x"}', "DEBUG"),
        ({"a": "b"}, None, '{"msg": "level=error", "nested": {"level": "fatal"}}', None),
        ({"a": "b"}, None, '{"level": 5}', None),
        ({"a": "b"}, None, "{not json level=error", "ERROR"),
        ({"a": "b"}, None, "plain text", None),
    ],
)
def test_the_level_from_labels_then_structured_metadata_then_the_line(
    labels: dict[str, str], metadata: dict[str, str] | None, line: str, level: str | None
) -> None:
    entry: list[object] = [str(NS), line] + ([metadata] if metadata else [])
    (found,) = _entries(_json({"stream": labels, "values": [entry]}))
    assert found.level.name == (level or "INFO")


def test_labels_and_metadata_that_named_the_service_or_level_leave_the_metadata() -> None:
    body = _json(
        {
            "stream": {"app": "shop", "level": "warn", "env": "prod", "severity": "x"},
            "values": [
                [str(NS), "a"],
                [str(NS + 1), "b", {"trace_id": "t", "detected_level": "error"}],
            ],
        },
        {"stream": {"job": "j"}, "values": [[str(NS), "c", {"level": "error", "user": "u"}]]},
    )
    first, second, third = _entries(body)
    assert _metadata(first) == {"labels": {"env": "prod", "severity": "x"}}
    # The stream's level comes first: the entry's detected_level stays as it was sent.
    assert _metadata(second) == {
        "labels": {"env": "prod", "severity": "x"},
        "structured_metadata": {"trace_id": "t", "detected_level": "error"},
    }
    assert (third.level.name, _metadata(third)) == ("ERROR", {"structured_metadata": {"user": "u"}})


def test_times_and_ids() -> None:
    early = 3_000_000_000_000_000  # 1970-02-04
    body = _json({"stream": {"app": "a"}, "values": [[str(NS), "x"], [str(early), "x"], [str(NS), "x"]]})
    late, first_of_1970, again = _entries(body)
    assert late.ts_us == NS // 1000
    assert first_of_1970.ts_us == parse_timestamp("1970-02-04T17:20:00.000000Z")
    assert late.log_id == again.log_id  # the same entry of the same stream: one entry, as in Loki
    ms = f"{NS // 1_000_000:012x}"
    assert format_log_id(late.log_id).startswith(f"{ms[:8]}-{ms[8:]}-7")  # a UUIDv7 of its millisecond
    changed = [
        _json({"stream": {"app": "a", "x": "1"}, "values": [[str(NS), "x"]]}),
        _json({"stream": {"app": "a"}, "values": [[str(NS + 1), "x"]]}),
        _json({"stream": {"app": "a"}, "values": [[str(NS), "y"]]}),
        _json({"stream": {"app": "a"}, "values": [[str(NS), "x", {"k": "v"}]]}),
    ]
    ids = {late.log_id} | {_entries(body)[0].log_id for body in changed}
    assert len(ids) == 5
    # A time far ahead is refused by the rules of POST /logs; one past the year 9999 before them.
    year_3000 = str(32_503_680_000 * 10**9)
    (far,) = _docs(_json({"stream": {"app": "a"}, "values": [[year_3000, "x"]]})).outcomes
    assert far == [FieldError("timestamp", "must not be more than 2 hours in the future")]
    # The same entry pushed as protobuf is the same entry.
    proto = push_request([('{app="a"}', [(NS, "x")])]).SerializeToString()
    assert _entries(proto, as_json=False)[0].log_id == late.log_id
    # An entry without a time is one of the receive time, with an id of its own each time.
    undated = push_request([('{app="a"}', [(None, "x")])]).SerializeToString()
    first_try, retry = (_entries(undated, as_json=False)[0] for _ in range(2))
    assert (first_try.ts_us, first_try.log_id != retry.log_id) == (NOW_US, True)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "is not a Loki push (JSON)"),
        (b'{"streams": {}}', "Expected `array`, got `object` - at `$.streams`"),
        (b'{"streams": [{"stream": {"a": "b"}}]}', "missing required field `values`"),
        (_json({"stream": {"a": 1}, "values": []}), "Expected `str`, got `int` - at `$.streams[0].stream"),
        (
            _json({"stream": {"a": "b"}, "values": [[1700000000000000000, "x"]]}),
            "at `$.streams[0].values[0][0]`",
        ),
        (_json({"stream": {"a": "b"}, "values": [["x", "y", {}, 4]]}), "at most length 3"),
        (_json({"stream": {"a": "b"}, "values": [["2024-01-01T00:00:00Z", "x"]]}), "epoch nanoseconds"),
        (_json({"stream": {"a": "b"}, "values": [["-5", "x"]]}), "streams[0].values[0][0]: must be a string"),
    ],
)
def test_a_body_that_is_not_a_push_is_refused_whole(body: bytes, problem: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        _docs(body)
    assert problem in refused.value.detail


def test_streams_with_bad_labels_and_entries_with_impossible_times_are_refused_alone() -> None:
    body = _json(
        {"stream": {}, "values": [[str(NS), "a"], [str(NS), "b"]]},
        {"stream": {"bad-name": "x"}, "values": [[str(NS), "c"]]},
        {"stream": {"app": "ok"}, "values": [[str(NS), "d"], ["9" * 30, "e"], ["1" * 5000, "f"]]},
        {"stream": {"app": "ok"}, "values": [["0" * 5000 + str(NS), "g"]]},
    )
    push = _docs(body)
    assert [e.message for e in push.outcomes if isinstance(e, NewEntry)] == ["d", "g"]
    assert push.places == [(2, 0), (3, 0)]
    assert push.refused_entries == 5
    assert [str(e) for e in push.refused] == [
        "streams[0]: labels: a stream needs at least one label (its 2 entries refused)",
        "streams[1]: labels: 'bad-name' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*) (its 1 entries refused)",
        "streams[2].values[1]: timestamp must be a time between the years 0001 and 9999",
        "streams[2].values[2]: timestamp must be a time between the years 0001 and 9999",
    ]
    proto = push_request([('{app="x"', [(NS, "a")]), ('{app="y"}', [(NS, "b")])]).SerializeToString()
    push = _docs(proto, as_json=False)
    assert [e.message for e in push.outcomes if isinstance(e, NewEntry)] == ["b"]
    assert [str(e) for e in push.refused] == [
        "streams[0]: labels: '{app=\"x\"' needs a comma or } after label app (its 1 entries refused)"
    ]
    bad_nanos = push_request([('{app="y"}', [(NS, "b")])])
    bad_nanos.streams[0].entries[0].timestamp.nanos = -1
    with pytest.raises(ValidationFailed, match=r"streams\[0\]\.entries\[0\]\.timestamp\.nanos: must be 0 to"):
        _docs(bad_nanos.SerializeToString(), as_json=False)


def test_bounds_before_decoding() -> None:
    limits = Limits(max_batch_entries=2)
    three = _json({"stream": {"a": "b"}, "values": [[str(NS), "x"]] * 3})
    with pytest.raises(PayloadTooLarge, match="at most 2 entries"):
        _docs(three, limits=limits)
    proto = push_request([('{a="b"}', [(NS, "x")] * 3)]).SerializeToString()
    with pytest.raises(PayloadTooLarge, match="at most 2 entries"):
        _docs(proto, as_json=False, limits=limits)
    # Labels shared by many entries are small on the wire and large once each entry keeps a copy.
    wide = push_request([('{a="' + "x" * 5000 + '"}', [(NS, "x")] * 2)]).SerializeToString()
    with pytest.raises(PayloadTooLarge, match="the entries with their stream's labels come to more than"):
        _docs(wide, as_json=False, limits=Limits(max_decompressed_bytes=10_000))
    with pytest.raises(ValidationFailed, match="is not a Loki PushRequest"):
        _docs(b"\x0a\xff\xff", as_json=False)


def test_large_label_sets_and_long_level_words_are_read_alike() -> None:
    """Only usual sizes are remembered between pushes; larger ones are read the same way each time."""
    value = "v" * 5000
    assert parse_labels(f'{{app="a", big="{value}"}}') == (("app", "a"), ("big", value))
    with pytest.raises(ValueError, match="appears twice"):
        parse_labels(f'{{big="{value}", big="x"}}')
    long_word = "level=" + "warning" * 10
    (entry,) = _entries(_json({"stream": {"a": "b"}, "values": [[str(NS), long_word]]}))
    assert entry.level.name == "INFO"
