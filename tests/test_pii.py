"""PII redaction: each type in realistic sentences, the near misses that must stay, counts and parameters."""
from __future__ import annotations

import pyarrow as pa
import pytest

from operators.base import ParameterError
from operators.pii import TYPES, RedactPII, count_columns, iban_valid, luhn_valid, redact


def table(texts: list[str | None]) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})


@pytest.mark.parametrize("text, expected", [
    # emails
    ("Write to john.doe@example.com or jane+news@mail.example.co.uk.", "Write to <EMAIL> or <EMAIL>."),
    ("Maintainer: Jordi Mallach <jordi@debian.org>", "Maintainer: Jordi Mallach <<EMAIL>>"),
    # phones: international, North American, European national formats
    ("Call +44 20 7946 0958 or +1 (415) 555-2671 today.", "Call <PHONE> or <PHONE> today."),
    ("Mobile: +4915112345678, office +33 1 23 45 67 89.", "Mobile: <PHONE>, office <PHONE>."),
    ("Reach us at (412) 268-4387, fax: 412.268.7395 or 1-415-642-4948.",
     "Reach us at <PHONE>, fax: <PHONE> or <PHONE>."),
    ("In London dial 020 7946 0958, in Paris 01 23 45 67 89, in Berlin (030) 1234567.",
     "In London dial <PHONE>, in Paris <PHONE>, in Berlin <PHONE>."),
    # IPv4 and IPv6
    ("The server at 192.168.1.10 forwards to 10.0.0.1.", "The server at <IP_ADDRESS> forwards to <IP_ADDRESS>."),
    ("Blocked range 10.0.0.1-10.0.0.9 and host 8.8.8.8:53.",
     "Blocked range <IP_ADDRESS>-<IP_ADDRESS> and host <IP_ADDRESS>:53."),
    ("Use 2001:0db8:85a3:0000:0000:8a2e:0370:7334 or 2001:db8::1, not fe80::1.",
     "Use <IP_ADDRESS> or <IP_ADDRESS>, not <IP_ADDRESS>."),
    ("Loopback ::1, mapped ::ffff:192.0.2.128, URL http://[2001:db8::2]:443/.",
     "Loopback <IP_ADDRESS>, mapped <IP_ADDRESS>, URL http://[<IP_ADDRESS>]:443/."),
    # payment cards
    ("Paid with 4111 1111 1111 1111, exp 05/27.", "Paid with <CREDIT_CARD>, exp 05/27."),
    ("Cards 4111-1111-1111-1111, 5500000000000004 and Amex 3782 822463 10005.",
     "Cards <CREDIT_CARD>, <CREDIT_CARD> and Amex <CREDIT_CARD>."),
    ("Card 4111 1111 1111 1111 123 (CVV after the number).", "Card <CREDIT_CARD> 123 (CVV after the number)."),
    # IBANs
    ("Transfer to DE89 3704 0044 0532 0130 00 by Friday.", "Transfer to <IBAN> by Friday."),
    ("IBAN GB82WEST12345698765432 BIC WESTGB2L; FR14 2004 1010 0505 0001 3M02 606.",
     "IBAN <IBAN> BIC WESTGB2L; <IBAN>."),
    # US SSNs
    ("Her SSN is 123-45-6789 and his is 078-05-1120.", "Her SSN is <US_SSN> and his is <US_SSN>."),
])
def test_redacts_each_type(text, expected):
    assert redact(text)[0] == expected


@pytest.mark.parametrize("text", [
    # version numbers: a 4-part version after a version word, with a v, starting 0., or with a Debian revision
    "Upgrade to version 1.2.3.4 now; v1.2.3.4 was buggy.",
    "Standards-Version updated to 4.6.0.1 and Linux 2.6.8.1 is supported.",
    "xft (2.1.8.2-5) unstable; dash (0.5.5.1-2.1); entry 1:4.1.4.2+svn3283-3; release 0.2.7.1",
    "See RFC 5280 section 4.2.1.12 and software version 2.60.0 (or 3.11.7).",
    # not valid IPv4 / IPv6
    "Octets 256.1.1.1, leading zero 192.168.01.1, five parts 1.2.3.4.5.",
    "At 12:30:45 the MAC 00:1A:2B:3C:4D:5E used std::io and f :: Int; seq 2:4:6:8:10:12:14:16",
    # dates and ISBNs
    "Due 2026-11-28 (28/11/2026, 01.02.2026, 05-11-2026).",
    "ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2, also 978-0-306-40615-7.",
    # digit runs and numbers that are not phones
    "Order 1234567890123 shipped; ids 9783161484100 and 123-456-7890.",
    "Boston, MA 02110-1301, USA; clause 252.227-7013; dump 1a 06 08 00 00 09 00 10 00",
    # card, IBAN and SSN near misses
    "Card 4111 1111 1111 1112 fails Luhn, so do 1234 5678 9012 3456 and 0000 0000 0000 0000.",
    "Wrong check digits: DE88 3704 0044 0532 0130 00; too short: DE89 3704 0044.",
    "Not SSNs: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000.",
])
def test_near_misses_stay(text):
    assert redact(text) == (text, dict.fromkeys(TYPES, 0))


def test_bare_four_part_number_is_an_ip_address():
    # The documented rule: with no version context, 1.2.3.4 is an address.
    assert redact("Ping 1.2.3.4 twice.")[0] == "Ping <IP_ADDRESS> twice."


def test_card_iin_check_is_optional():
    luhn_valid_no_issuer = "Ref 1000 0000 0000 0008 paid."  # passes Luhn, no known issuer prefix
    assert luhn_valid("1000000000000008")
    assert redact(luhn_valid_no_issuer)[0] == luhn_valid_no_issuer
    assert redact(luhn_valid_no_issuer, card_iin=False)[0] == "Ref <CREDIT_CARD> paid."


def test_validators():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE88370400440532013000")
    assert not iban_valid("DE8937040044053201300")  # wrong length for DE


def test_counts_per_type_and_columns():
    text = ("Mail a@b.io or c.d@example.org, call +44 20 7946 0958, card 4111 1111 1111 1111, "
            "IBAN DE89 3704 0044 0532 0130 00, SSN 123-45-6789, hosts 10.0.0.1 and ::1.")
    new, counts = redact(text)
    assert new == ("Mail <EMAIL> or <EMAIL>, call <PHONE>, card <CREDIT_CARD>, IBAN <IBAN>, SSN <US_SSN>, "
                   "hosts <IP_ADDRESS> and <IP_ADDRESS>.")
    assert counts == {"EMAIL": 2, "PHONE": 1, "IP_ADDRESS": 2, "CREDIT_CARD": 1, "IBAN": 1, "US_SSN": 1}

    out = RedactPII()(table([text, "nothing here", None, "two: x@y.com z@w.net"]))
    assert out.column_names == ["id", "text", *count_columns()]
    assert count_columns() == ["pii_email", "pii_phone", "pii_ip_address", "pii_credit_card", "pii_iban",
                               "pii_us_ssn"]
    assert out["text"].to_pylist() == [new, "nothing here", None, "two: <EMAIL> <EMAIL>"]
    assert out["pii_email"].to_pylist() == [2, 0, 0, 2]
    assert out["pii_ip_address"].to_pylist() == [2, 0, 0, 0]
    assert {c: sum(out[c].to_pylist()) for c in count_columns()} == {
        "pii_email": 4, "pii_phone": 1, "pii_ip_address": 2, "pii_credit_card": 1, "pii_iban": 1, "pii_us_ssn": 1}
    assert out.schema.field("pii_email").type == pa.int32()
    assert RedactPII.metrics == tuple(count_columns())  # the runner sums these columns into the manifest


def test_types_subset_redacts_and_counts_only_those():
    op = RedactPII(types=("EMAIL", "US_SSN"))
    out = op(table(["a@b.io, 123-45-6789, 10.0.0.1, +44 20 7946 0958"]))
    assert out["text"].to_pylist() == ["<EMAIL>, <US_SSN>, 10.0.0.1, +44 20 7946 0958"]
    assert op.count_columns() == ["pii_email", "pii_us_ssn"]
    assert out.column_names == ["id", "text", "pii_email", "pii_us_ssn"]


def test_operator_matches_pure_function_on_mixed_rows():
    texts = ["a@b.io", "version 1.2.3.4", "1.2.3.4", "4111 1111 1111 1111", "no pii", "", None,
             "+1 (415) 555-2671 / DE89 3704 0044 0532 0130 00"]
    out = RedactPII()(table(texts))
    assert out["text"].to_pylist() == [None if t is None else redact(t)[0] for t in texts]


def test_rerun_replaces_count_columns():
    once = RedactPII()(table(["a@b.io"]))
    twice = RedactPII()(once)
    assert twice.column_names == once.column_names
    assert twice["pii_email"].to_pylist() == [0]


@pytest.mark.parametrize("kwargs, message", [
    ({"types": ("EMAIL", "PASSPORT")}, "PASSPORT"), ({"types": ()}, "non-empty"), ({"types": "EMAIL"}, "tuple"),
    ({"types": ("EMAIL", "EMAIL")}, "duplicates"), ({"card_iin": "yes"}, "bool"),
])
def test_parameter_errors_name_the_field(kwargs, message):
    field = next(iter(kwargs))
    with pytest.raises(ParameterError, match=rf"RedactPII\.{field}: .*{message}"):
        RedactPII(**kwargs)


def test_types_list_becomes_tuple_and_config_records_it():
    op = RedactPII(types=["IBAN"])
    assert op.types == ("IBAN",)
    assert op.config() == {"operator": "RedactPII", "types": ("IBAN",), "card_iin": True}
