"""The data model's rules, one by one, with the error a client sees for each."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logsvc.domain.cursors import decode_cursor, encode_cursor
from logsvc.domain.documents import decode_documents
from logsvc.domain.entries import Level, Limits
from logsvc.domain.queries import parse_query
from logsvc.domain.timestamps import format_timestamp, parse_timestamp
from logsvc.domain.validation import validate_entries
from logsvc.errors import PayloadTooLarge, ValidationFailed

NOW = 1_750_000_000_000_000  # 2025-06-15T15:06:40Z
WORDS = st.integers(-(2**63), 2**64 - 1)  # every integer msgpack holds
LIMITS = Limits()


def validate_one(entry: Any) -> Any:
    return validate_entries([entry], now_us=NOW, limits=LIMITS, batch=False)[0]


def errors_of(entry: Any, limits: Limits = LIMITS) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_entries([entry], now_us=NOW, limits=limits, batch=False)
    return [str(e) for e in caught.value.errors]


class TestTimestamps:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000000Z"),
            ("2024-05-01t12:00:00z", "2024-05-01T12:00:00.000000Z"),
            ("2024-05-01 12:00:00Z", "2024-05-01T12:00:00.000000Z"),
            ("2024-05-01T12:00:00.5Z", "2024-05-01T12:00:00.500000Z"),
            ("2024-05-01T12:00:00.123456789Z", "2024-05-01T12:00:00.123456Z"),
            ("2024-05-01T14:30:00+02:30", "2024-05-01T12:00:00.000000Z"),
            ("2024-05-01T07:00:00-05:00", "2024-05-01T12:00:00.000000Z"),
            ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000000Z"),
        ],
    )
    def test_rfc3339_is_normalised_to_utc_microseconds(self, text: str, expected: str) -> None:
        assert format_timestamp(parse_timestamp(text)) == expected

    @pytest.mark.parametrize(
        ("number", "expected"),
        [
            (1714564800, "2024-05-01T12:00:00.000000Z"),
            (1714564800.25, "2024-05-01T12:00:00.250000Z"),
            (1714564800123, "2024-05-01T12:00:00.123000Z"),
            (1714564800123456, "2024-05-01T12:00:00.123456Z"),
            (1714564800123456789, "2024-05-01T12:00:00.123456Z"),
            (0, "1970-01-01T00:00:00.000000Z"),
        ],
    )
    def test_epoch_unit_follows_magnitude(self, number: float, expected: str) -> None:
        assert format_timestamp(parse_timestamp(number)) == expected

    @pytest.mark.parametrize(
        "value",
        [
            "2024-05-01T12:00:00",  # no offset
            "2024-05-01",
            "2024-13-01T12:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:60Z",
            "2024-05-01T12:00:00+24:00",
            "yesterday",
            "",
            True,
            None,
            [],
            float("nan"),
        ],
    )
    def test_malformed_is_rejected(self, value: object) -> None:
        with pytest.raises(ValueError, match="RFC 3339"):
            parse_timestamp(value)

    @pytest.mark.parametrize(
        "value", [1e300, -1e300, 10**400, 10**22, 99999999999999999999999, "9999-12-31T23:59:59-01:00"]
    )
    def test_beyond_the_years_1_to_9999_is_rejected(self, value: object) -> None:
        """Such numbers used to reach the store and overflow its 64-bit integers (a 500)."""
        with pytest.raises(ValueError, match="between the years 0001 and 9999"):
            parse_timestamp(value)

    def test_future_beyond_two_hours_is_rejected(self) -> None:
        two_hours = 2 * 3600
        assert validate_one({"message": "m", "timestamp": NOW / 1e6 + two_hours - 1}).ts_us > NOW
        assert errors_of({"message": "m", "timestamp": NOW / 1e6 + two_hours + 1}) == [
            "timestamp: must not be more than 2 hours in the future"
        ]

    def test_before_1970_is_rejected(self) -> None:
        assert errors_of({"message": "m", "timestamp": "1969-12-31T23:59:59Z"}) == [
            "timestamp: must not be before 1970-01-01T00:00:00Z"
        ]
        assert errors_of({"message": "m", "timestamp": -1}) == [
            "timestamp: must not be before 1970-01-01T00:00:00Z"
        ]

    def test_default_is_receive_time(self) -> None:
        entry = validate_one({"message": "m"})
        assert entry.ts_us == entry.received_us == NOW


class TestEntryRules:
    def test_older_client_shape_is_accepted(self) -> None:
        entry = validate_one(
            {
                "service_name": "test-service",
                "timestamp": "2025-06-15T15:00:00Z",
                "log_type": "application",
                "level": "INFO",
                "message": "hello",
                "metadata": {"user_id": 123, "ratio": 0.5},
            }
        )
        assert (entry.service_name, entry.level, entry.log_type) == (
            "test-service",
            Level.INFO,
            "application",
        )
        assert json.loads(entry.metadata) == {"user_id": 123, "ratio": 0.5}

    def test_defaults(self) -> None:
        entry = validate_one({"message": "m"})
        assert (entry.service_name, entry.level, entry.log_type, entry.metadata) == (
            "default",
            Level.INFO,
            "application",
            None,
        )
        assert len(entry.log_id) == 16

    @pytest.mark.parametrize(
        ("given", "level"),
        [
            ("info", Level.INFO),
            ("Warn", Level.WARN),
            ("warning", Level.WARN),
            ("WARNING", Level.WARN),
            ("err", Level.ERROR),
            ("critical", Level.FATAL),
            ("information", Level.INFO),
            ("trace", Level.TRACE),
            ("DEBUG", Level.DEBUG),
            ("fatal", Level.FATAL),
        ],
    )
    def test_levels_any_case_and_synonyms(self, given: str, level: Level) -> None:
        assert validate_one({"message": "m", "level": given}).level == level

    @pytest.mark.parametrize("given", ["info", "warning", "error"])
    def test_severity_is_an_alias(self, given: str) -> None:
        assert validate_one({"message": "m", "severity": given}).level.name == given.upper().replace(
            "WARNING", "WARN"
        )

    def test_level_and_severity_together_is_an_error(self) -> None:
        assert errors_of({"message": "m", "level": "info", "severity": "error"}) == [
            "severity: is an alias of level; send only one of them"
        ]

    def test_bad_level_names_the_rule(self) -> None:
        assert errors_of({"message": "m", "level": "loud"}) == [
            "level: must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"
        ]
        assert errors_of({"message": "m", "severity": 3}) == [
            "severity: must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"
        ]

    def test_unknown_field_is_named(self) -> None:
        (error,) = errors_of({"message": "m", "servce_name": "typo"})
        assert error.startswith("servce_name: unknown field")

    @pytest.mark.parametrize(
        ("entry", "expected"),
        [
            ({}, "message: is required"),
            ({"message": None}, "message: is required"),
            ({"message": 5}, "message: must be a string"),
            ({"message": " \n\t"}, "message: must not be blank"),
            ({"message": "m", "service_name": ""}, "service_name: must be 1-128 characters"),
            ({"message": "m", "service_name": "a b"}, "service_name: must be 1-128 characters"),
            ({"message": "m", "service_name": "x" * 129}, "service_name: must be 1-128 characters"),
            ({"message": "m", "service_name": 7}, "service_name: must be 1-128 characters"),
            ({"message": "m", "log_type": ""}, "log_type: must be a string of 1-64"),
            ({"message": "m", "log_type": "t" * 65}, "log_type: must be a string of 1-64"),
            ({"message": "m", "log_type": "a\nb"}, "log_type: must be a string of 1-64"),
            ({"message": "m", "metadata": [1]}, "metadata: must be a JSON object"),
            ({"message": "m", "metadata": "x"}, "metadata: must be a JSON object"),
            ({"message": "m", "log_id": "not-a-uuid"}, "log_id: must be a UUID"),
            ({"message": "m", "log_id": 12}, "log_id: must be a UUID"),
            ("just a string", ": must be a JSON object"),
        ],
    )
    def test_each_rule_names_field_and_rule(self, entry: Any, expected: str) -> None:
        (error,) = errors_of(entry)
        assert error.startswith(expected)

    def test_every_broken_rule_is_reported(self) -> None:
        errors = errors_of({"level": "x", "service_name": "", "timestamp": "soon"})
        assert {e.split(":")[0] for e in errors} == {"message", "level", "service_name", "timestamp"}

    def test_service_name_charset(self) -> None:
        assert validate_one({"message": "m", "service_name": "a.b_c:d/e-F9"}).service_name == "a.b_c:d/e-F9"
        # The whole name is matched: a pattern's "$" would let a trailing newline through.
        assert errors_of({"message": "m", "service_name": "web\n"}) == [
            "service_name: must be 1-128 characters of A-Z a-z 0-9 . _ : / -"
        ]

    def test_message_size_counts_utf8_bytes(self) -> None:
        limits = Limits(max_message_bytes=8)
        assert validate_entries([{"message": "é" * 4}], now_us=NOW, limits=limits, batch=False)
        assert errors_of({"message": "é" * 5}, limits) == ["message: must be at most 8 bytes of UTF-8"]

    def test_metadata_depth_limit(self) -> None:
        def nested(depth: int) -> dict[str, Any]:
            node: dict[str, Any] = {"leaf": 1}
            for _ in range(depth - 1):
                node = {"k": node}
            return node

        assert validate_one({"message": "m", "metadata": nested(8)})
        assert errors_of({"message": "m", "metadata": nested(9)}) == [
            "metadata: must be nested at most 8 levels deep"
        ]
        assert errors_of({"message": "m", "metadata": {"a": [[[[[[[[1]]]]]]]]}}) == [
            "metadata: must be nested at most 8 levels deep"
        ]

    def test_metadata_key_and_size_limits(self) -> None:
        assert errors_of({"message": "m", "metadata": {"k" * 129: 1}})[0].startswith(
            "metadata: keys must be at most 128 characters"
        )
        assert errors_of({"message": "m", "metadata": {"big": "x" * 70_000}}) == [
            "metadata: must be at most 65536 bytes as JSON"
        ]

    def test_client_received_at_is_ignored(self) -> None:
        assert validate_one({"message": "m", "received_at": "1999-01-01T00:00:00Z"}).received_us == NOW

    def test_client_log_id_is_kept(self) -> None:
        log_id = "01890a5d-ac96-774b-bcce-b302099a8057"
        assert validate_one({"message": "m", "log_id": log_id}).log_id.hex() == log_id.replace("-", "")

    def test_batch_errors_carry_index(self) -> None:
        with pytest.raises(ValidationFailed) as caught:
            validate_entries([{"message": "ok"}, {"level": "x"}], now_us=NOW, limits=LIMITS, batch=True)
        assert [str(e) for e in caught.value.errors] == [
            "[1].message: is required",
            "[1].level: must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL",
        ]

    def test_batch_size_limit(self) -> None:
        with pytest.raises(ValidationFailed, match="at most 3 entries; got 4"):
            validate_entries(
                [{"message": "m"}] * 4, now_us=NOW, limits=Limits(max_batch_entries=3), batch=True
            )


class TestBodies:
    def test_shapes(self) -> None:
        def decode(body: bytes, *, ndjson: bool = False) -> tuple[list[Any], bool]:
            return decode_documents(body, ndjson=ndjson, limits=LIMITS)

        assert decode(b'{"message": "a"}') == ([{"message": "a"}], True)
        assert decode(b'[{"message": "a"}]') == ([{"message": "a"}], False)
        assert decode(b'{"logs": [{"message": "a"}]}') == ([{"message": "a"}], False)
        assert decode(b'{"message": "a"}\n\n{"message": "b"}\n', ndjson=True) == (
            [{"message": "a"}, {"message": "b"}],
            False,
        )

    @pytest.mark.parametrize(
        ("body", "ndjson", "expected"),
        [
            (b"{", False, "body: is not valid JSON"),
            (b"", False, "body: is not valid JSON"),
            (b"[]", False, "body: contains no entries"),
            (b"42", False, "body: must be an entry object"),
            (b'{"logs": {}}', False, "logs: must be an array"),
            (b'{"logs": [], "x": 1}', False, 'body: a {"logs": [...]} batch has no other fields; got x'),
            (b'{"message": "a"}\n{oops', True, "body: line 2 is not valid JSON"),
            (
                b'{"message": "a"}\r\n\r\n  \n{"message": "b"}\r{oops\n',
                True,
                "body: line 5 is not valid JSON",
            ),
            (b"\n\n", True, "body: contains no entries"),
            (b"[" * 10_000 + b"]" * 10_000, False, "body: is not valid JSON"),
        ],
    )
    def test_malformed_bodies(self, body: bytes, ndjson: bool, expected: str) -> None:
        with pytest.raises(ValidationFailed) as caught:
            decode_documents(body, ndjson=ndjson, limits=LIMITS)
        assert str(caught.value.errors[0]).startswith(expected)

    @pytest.mark.parametrize("ndjson", [False, True])
    def test_a_body_of_more_values_than_a_batch_may_hold_is_refused_before_decoding(
        self, ndjson: bool
    ) -> None:
        limits = Limits(max_batch_entries=10, max_metadata_bytes=1024)
        nested = b'{"message": "m", "metadata": {"k": [' + b"{}," * 1500 + b"{}]}}"
        body = nested if ndjson else b"[" + nested + b"]"
        with pytest.raises(
            PayloadTooLarge, match="more than 1512 JSON values; a batch holds at most 10 entries"
        ):
            decode_documents(body, ndjson=ndjson, limits=limits)
        # Commas, brackets and escaped quotes inside strings are not values.
        text = b'{"message": "' + b'[{,\\"' * 1000 + b'"}'
        body = b"\n".join([text] * 10) if ndjson else b"[" + b",".join([text] * 10) + b"]"
        docs, _ = decode_documents(body, ndjson=ndjson, limits=limits)
        assert [doc["message"] for doc in docs] == ['[{,"' * 1000] * 10

    def test_a_batch_limit_of_one_still_admits_the_largest_metadata(self) -> None:
        body = b'{"message": "m", "metadata": {"k": [' + b"0," * 30_000 + b"0]}}"
        docs, single = decode_documents(body, ndjson=False, limits=Limits(max_batch_entries=1))
        assert single
        assert len(docs[0]["metadata"]["k"]) == 30_001

    # Before the string pattern took an unclosed string to the end, this body took hours (quadratic).
    @pytest.mark.timeout(60)
    def test_an_unclosed_string_of_escaped_quotes_is_refused_in_linear_time(self) -> None:
        body = b'"' + b'\\",' * 3_000_000  # 9 MB: one string that never closes
        with pytest.raises(ValidationFailed, match="body: is not valid JSON"):
            decode_documents(body, ndjson=False, limits=Limits(max_batch_entries=1))

    def test_ndjson_past_the_batch_limit_is_refused_before_decoding(self) -> None:
        limits = Limits(max_batch_entries=3)
        body = b'{"message": "m"}\n \r\n' * 3 + b"{not even json\n"
        with pytest.raises(ValidationFailed, match="a batch holds at most 3 entries; got more"):
            decode_documents(body, ndjson=True, limits=limits)


class TestQuery:
    def query(self, **params: str) -> Any:
        return parse_query(params.items(), now_us=NOW)

    def errors(self, params: list[tuple[str, str]]) -> list[str]:
        with pytest.raises(ValidationFailed) as caught:
            parse_query(params, now_us=NOW)
        return [str(e) for e in caught.value.errors]

    def test_limit(self) -> None:
        assert self.query().limit == 100
        assert self.query(limit="7").limit == 7
        assert self.query(limit="1000000000").limit == 1000
        for bad in ("0", "-1", "abc", "1.5", ""):
            assert self.errors([("limit", bad)]) == ["limit: must be a whole number from 1 to 1000"]

    @pytest.mark.parametrize("loose", ["5_0", "+5", " 5", "5 ", "\u0665", "\u00b2", "5\n"])
    def test_limit_is_ascii_digits_only(self, loose: str) -> None:
        """int() takes all of these (or, for "²", passes isdigit() and then fails): none is a limit."""
        assert self.errors([("limit", loose)]) == ["limit: must be a whole number from 1 to 1000"]

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("since", "99999999999999999999999"),
            ("since", "1" + "0" * 400),  # more than a float holds
            ("until", "1e300"),
            ("until", "-1e300"),
            ("since", "5_0"),
            ("since", "\u00b2"),
            ("hours", "1_0"),
            ("hours", " 1"),
        ],
    )
    def test_numbers_out_of_range_or_loosely_written_name_their_parameter(
        self, name: str, value: str
    ) -> None:
        assert [e.split(":")[0] for e in self.errors([(name, value)])] == [name]

    def test_levels(self) -> None:
        assert self.query(level="warning").levels == (Level.WARN,)
        assert self.query(min_level="error").levels == (Level.ERROR, Level.FATAL)
        assert self.query(min_level="trace").levels is None
        assert self.query(level="info", min_level="error").levels == ()
        assert self.errors([("min_level", "loud")]) == [
            "min_level: must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"
        ]

    def test_times(self) -> None:
        q = self.query(since="2024-05-01T00:00:00Z", until="1714564800")
        assert (q.since_us, q.until_us) == (1714521600000000, 1714564800000000)
        assert self.query(hours="1.5").since_us == NOW - 5_400_000_000
        assert self.errors([("since", "2024-05-02T00:00:00Z"), ("until", "2024-05-01T00:00:00Z")]) == [
            "until: must be later than since"
        ]
        assert self.errors([("hours", "1"), ("since", "0")]) == ["hours: use either hours or since, not both"]
        assert self.errors([("hours", "-1")]) == ["hours: must be a positive number of hours"]
        assert self.errors([("since", "last week")])[0].startswith("since: must be an RFC 3339")

    def test_service_name_is_matched_whole(self) -> None:
        assert self.errors([("service_name", "web\n")])[0].startswith("service_name: must be 1-128")

    def test_unknown_and_repeated_parameters_are_errors(self) -> None:
        errors = self.errors([("service", "x"), ("limit", "1"), ("limit", "2")])
        assert errors[0].startswith("service: unknown parameter")
        assert errors[1] == "limit: given more than once"

    def test_search_terms(self) -> None:
        assert self.query(q='disk  "out of space" -x').terms == ("disk", "out of space", "-x")
        assert self.errors([("q", " ! ")]) == ["q: must contain at least one word"]
        assert self.errors([("q", "a" * 1025)]) == ["q: must be at most 1024 characters"]
        assert self.errors([("q", "secret\x00")]) == ["q: must not contain NUL characters"]

    def test_cursor_round_trip_and_garbage(self) -> None:
        assert decode_cursor(encode_cursor(1714564800000000, 42)) == (1714564800000000, 42)
        assert decode_cursor(encode_cursor(5, "abc#def")) == (5, "abc#def")
        assert self.query(cursor=encode_cursor(5, 6)).cursor == (5, 6)
        out_of_range = [encode_cursor(2**64 - 1, 5), encode_cursor(-1, 5), encode_cursor(5, 2**63)]
        assert "kwHP__________8F" in out_of_range
        for bad in ("", "zzz", "!!!", "é", encode_cursor(1, 2)[:-2], *out_of_range):
            assert self.errors([("cursor", bad)]) == [
                "cursor: is not a cursor this service returned (use next_cursor as given)"
            ]

    @given(
        st.text()
        | st.tuples(st.integers(0, 2), WORDS, WORDS | st.text(max_size=40)).map(
            lambda made: base64.urlsafe_b64encode(msgspec.msgpack.encode(made)).decode()
        )
    )
    def test_any_cursor_text_is_a_position_in_range_or_refused(self, text: str) -> None:
        try:
            ts_us, tiebreak = decode_cursor(text)
        except ValueError:
            return
        assert 0 <= ts_us < 2**63
        assert isinstance(tiebreak, str) or 0 <= tiebreak < 2**63


class TestClientLogIds:
    """A client's own UUIDv7 dates an entry that has no timestamp, so that a retry is the very same entry."""

    UUID7_AT_NOW_MINUS_1S = "01977420-d818-7000-8000-000000000001"  # 1749999999000 ms

    def test_a_uuid7_without_timestamp_takes_its_time(self) -> None:
        entry = validate_one({"message": "m", "log_id": self.UUID7_AT_NOW_MINUS_1S})
        assert entry.ts_us == 1_749_999_999_000_000
        assert entry.received_us == NOW

    def test_the_same_body_sent_twice_is_the_same_entry(self) -> None:
        body = {"message": "m", "log_id": self.UUID7_AT_NOW_MINUS_1S}
        first = validate_entries([body], now_us=NOW, limits=LIMITS, batch=False)[0]
        retry = validate_entries([body], now_us=NOW + 5_000_000, limits=LIMITS, batch=False)[0]
        assert (first.log_id, first.ts_us) == (retry.log_id, retry.ts_us)

    def test_an_explicit_timestamp_wins(self) -> None:
        entry = validate_one({"message": "m", "log_id": self.UUID7_AT_NOW_MINUS_1S, "timestamp": 0})
        assert entry.ts_us == 0

    def test_other_uuid_versions_default_to_the_receive_time(self) -> None:
        entry = validate_one({"message": "m", "log_id": "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"})
        assert entry.ts_us == NOW

    def test_a_uuid7_from_the_far_future_is_refused_by_name(self) -> None:
        future = "ffff0000-0000-7000-8000-000000000000"
        assert errors_of({"message": "m", "log_id": future}) == [
            "log_id: is a UUIDv7 whose time must not be more than 2 hours in the future"
        ]
