"""filters.pii on strings: positives of every kind in several formats, finance-text hard negatives, real
documents from data/finance, and redaction."""

import time

import pytest

from filters.pii import KINDS, PLACEHOLDERS, Span, find_pii, redact
from tests.conftest import DATA, read_jsonl_gz


def found(text: str, kinds=KINDS) -> list[tuple[str, str]]:
    return [(s.kind, text[s.start:s.end]) for s in find_pii(text, kinds)]


@pytest.mark.parametrize("kind,value", [
    ("email", "jane.doe@example.com"),
    ("email", "j.smith+tax@mail.acme-capital.co.uk"),
    ("email", "IR_Desk-2@investor.northwind.io"),
    ("ip", "192.168.0.1"),
    ("ip", "8.8.8.8"),
    ("ip", "203.0.113.254"),
    ("ip", "2001:db8::8a2e:370:7334"),
    ("ip", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("ip", "fe80::1ff:fe23:4567:890a"),
    ("phone", "(212) 555-0123"),
    ("phone", "212-555-0123"),
    ("phone", "212.555.0123"),
    ("phone", "+1 212 555 0123"),
    ("phone", "+1-212-555-0123"),
    ("phone", "1-800-555-0199"),
    ("phone", "+44 20 7946 0958"),
    ("phone", "+44 (0)161 496 0000"),
    ("phone", "+49 30 1234567"),
    ("phone", "+33 1 23 45 67 89"),
    ("phone", "+14155552671"),
    # national formats with the trunk 0, extensions, the 00 / 001 international prefixes, "/" after the area
    ("phone", "0490 75 40 81"),
    ("phone", "03.93.92.16.85"),
    ("phone", "0961-7596216"),
    ("phone", "020 7946 0958"),
    ("phone", "(020) 7946 0958"),
    ("phone", "+1-903-140-4508x769"),
    ("phone", "(898)666-3621x0135"),
    ("phone", "212-555-0123 ext. 12"),
    ("phone", "505-798-6050x"),
    ("phone", "001-253-366-9781"),
    ("phone", "0044 20 7946 0958"),
    ("phone", "888/501-3145"),
    ("phone", "+41 (0)62 585 51 90"),
    ("card", "4111111111111111"),
    ("card", "4111 1111 1111 1111"),
    ("card", "5500-0000-0000-0004"),
    ("card", "2221000000000009"),
    ("card", "3782 822463 10005"),
    ("card", "371449635398431"),
    ("card", "6011 1111 1111 1117"),
    # every major issuer (public test numbers of each scheme), in several groupings
    ("card", "3530111333300000"),        # JCB
    ("card", "3566 0020 2036 0505"),     # JCB
    ("card", "30569309025904"),          # Diners Club International, 14 digits
    ("card", "3056 930902 5904"),        # Diners 4-6-4
    ("card", "36227206271667"),          # Diners
    ("card", "6759649826438453"),        # Maestro
    ("card", "6304000000000000"),        # Maestro
    ("card", "501800000009"),            # Maestro, 12 digits
    ("card", "6200000000000005"),        # UnionPay
    ("card", "6212 3456 7890 1232 001"),  # UnionPay, 19 digits 4-4-4-4-3
    ("card", "3782 8224 6310 005"),      # Amex 4-4-4-3
    ("card", "3782-822463-10005"),       # Amex 4-6-5 with dashes
    ("card", "2720 9900 0000 0007"),     # Mastercard 2-series
    ("iban", "DE89370400440532013000"),
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("iban", "GB29 NWBK 6016 1331 9268 19"),
    ("iban", "GB29NWBK60161331926819"),
    ("iban", "FR1420041010050500013M02606"),
    ("iban", "NL91 ABNA 0417 1643 00"),
    ("iban", "BE68 5390 0754 7034"),
    ("iban", "NO93 8601 1117 947"),
    ("iban", "CH93 0076 2011 6238 5295 7"),
    ("iban", "gb29nwbk60161331926819"),
    ("iban", "de89 3704 0044 0532 0130 00"),
    ("ssn", "123-45-6789"),
    ("ssn", "078 05 1120"),
    ("ssn", "665-01-0001"),
])
def test_pii_is_found_with_its_exact_span(kind, value):
    text = f"Per the filing, the record shows {value}. Nothing else."
    assert found(text) == [(kind, value)]


@pytest.mark.parametrize("text", [
    "Revenue was $1,234,567.89 and margins rose 12.5% year over year.",
    "The dividend is payable on 2024-01-15 to holders of record on 01/15/2024.",
    "In fiscal 2023 and Q3 2024 net sales were 94,930 and 81,797 million.",
    "Apple's CUSIP is 037833100 and its ISIN is US0378331005; the ticker is AAPL (NASDAQ: AAPL).",
    "The company filed its Form 10-Q and Form 8-K; see Exhibit 31.1 and Note 12.",
    "Upgrade to version 1.2.3.4 of the trading software; release 10.0.0.1 fixed the bug.",
    "Card-like reference 4111111111111112 fails the Luhn check.",
    "Bare 10-digit numbers such as 2125550123 or 9876543210 are ids or amounts.",
    "Extension 555-0123 of the range.",  # 7 digits, no area code and no phone label: a reference or range
    "Estimates range 1,234-5,678 units, 1990-2024, pp. 12-345 and 100-999.",
    "The value 256.1.1.1 is not an address, nor is 192.168.1.256 or 01.02.03.04.",
    "The IBAN DE88370400440532013000 has a wrong checksum.",
    "Invalid SSNs: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567 and 123-45-0000.",
    "Bare 9 digits 123456789 are a CUSIP-like id, not an SSN; 123-45-67890 is too long.",
    "Follow @Reuters and @AAPL for updates; icon@2x.png is an image; std::vector and 10:30:45.",
    "Shares rose +12.5% and the index gained +1,234.56 points to 37,123.45.",
    "Account ref ACC-2024-00123456 and invoice INV-2041 were settled; CUSIP 38259P508.",
    "The dotted value 1.2.3.4.5 and the phone-ish 212-555-0123-99 are parts of longer numbers.",
])
def test_finance_hard_negatives_are_not_pii(text):
    assert find_pii(text) == []


def test_isin_never_matches_as_iban():
    for isin in ("US0378331005", "GB0002634946", "DE0007164600", "FR0000120271"):
        assert find_pii(f"ISIN {isin} is listed.") == []


def test_version_context_decides_dotted_quads():
    # decision: a dotted quad right after a version/release/build/section word is a version number
    assert find_pii("We run version 1.2.3.4 in production.") == []
    assert find_pii("Build: '4.2.16.14' was deployed.") == []
    assert find_pii("Section 4.1.2.3 applies.") == []
    assert found("The request came from 1.2.3.4 according to the logs.") == [("ip", "1.2.3.4")]


def test_email_in_url_userinfo_is_not_an_address_but_mailto_is():
    assert find_pii("Download from ftp://anonymous@ftp.example.org/pub today.") == []
    assert find_pii("See https://user:secret@host.example.com/x now.") == []
    assert found("Write to mailto:ir@example.com now.") == [("email", "ir@example.com")]


def test_card_grouping_must_be_consistent_and_issuer_known():
    assert find_pii("Card 4111 1111-1111 1111 mixed separators.") == []
    # Luhn-valid, but no issuer has 9 or 7 as a first digit
    assert find_pii("The id 9000000000000000 and 7000000000000008 pass Luhn.") == []
    assert find_pii("A run 41111111111111110 of 17 digits inside 9941111111111111111 numbers.") == []
    # a table row of years is not cut into a card: the whole space-separated run is the candidate
    assert find_pii("Years 2019 4111 1111 1111 1111 in one row.") == []


def test_phone_space_separated_needs_plus_one_parentheses_or_a_label():
    assert find_pii("Columns 212 555 0123 in a table.") == []
    text = "Dial +1 212 555 0123 or (212) 555 0123."
    assert found(text) == [("phone", "+1 212 555 0123"), ("phone", "(212) 555 0123")]
    assert found("Tel 212 555 0123 any time.") == [("phone", "212 555 0123")]


def test_a_phone_label_makes_any_7_to_15_digit_number_a_phone():
    text = "Mobile: 432 03 163 Desk: 5403926876 Fax: 99 577450. Please call me at 668 5702 tomorrow."
    assert found(text) == [("phone", "432 03 163"), ("phone", "5403926876"), ("phone", "99 577450"),
                           ("phone", "668 5702")]
    # without the label these are ids and amounts; a label too far back does not count
    assert find_pii("Order 5403926876 shipped; lot 432 03 163 and 668 5702 units.") == []
    assert find_pii("We discussed the call at length with the board and then approved 5403926876 shares.") == []


def test_national_formats_stay_clear_of_dates_ssns_and_longer_runs():
    assert find_pii("Dates 01.02.2024 and 03-04-2023, accession 0001193125-21-123456.") == []
    assert found("SSN 053-06-8118 on file.") == [("ssn", "053-06-8118")]
    assert find_pii("The row 12 0490 39 07 81 99 is one run of numbers.") == []


def test_subnet_masks_are_not_addresses():
    for mask in ("255.255.255.0", "255.255.0.0", "255.255.255.128", "255.0.0.0", "0.0.0.255", "0.0.0.0"):
        assert find_pii(f"Set the netmask to {mask} on the host.") == [], mask
    assert found("Host 10.1.2.3 with mask 255.255.255.0.") == [("ip", "10.1.2.3")]


def test_email_inside_a_url_path_or_query_is_an_address():
    assert found("Open https://example.com/contact/jo.smith@example.org now.") == [("email", "jo.smith@example.org")]
    assert found("See https://x.example/profile?email=ann@bank.example&id=3 today.") == [("email", "ann@bank.example")]



def test_iban_followed_by_a_number_is_cut_to_its_country_length():
    assert found("IBAN BE68 5390 0754 7034 2024 was used.") == [("iban", "BE68 5390 0754 7034")]


def test_spans_sorted_non_overlapping_and_kind_selection():
    text = "Mail a@b.com, SSN 123-45-6789, IP 10.0.0.1, tel +44 20 7946 0958, IBAN GB29 NWBK 6016 1331 9268 19."
    spans = find_pii(text)
    assert [s.kind for s in spans] == ["email", "ssn", "ip", "phone", "iban"]
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))
    assert spans[0] == Span("email", 5, 12)
    assert [s.kind for s in find_pii(text, ["ssn", "ip"])] == ["ssn", "ip"]
    with pytest.raises(ValueError, match="unknown PII kinds"):
        find_pii(text, ["passport"])


def test_redact_replaces_spans_and_counts_per_kind():
    text = "Contact jo@example.com or ann@example.org, card 4111-1111-1111-1111, SSN 123-45-6789."
    out, counts = redact(text)
    assert out == "Contact <EMAIL> or <EMAIL>, card <CARD>, SSN <SSN>."
    assert counts == {"email": 2, "card": 1, "ssn": 1}
    assert set(PLACEHOLDERS) == set(KINDS)
    out, counts = redact(text, ["card"])
    assert out == "Contact jo@example.com or ann@example.org, card <CARD>, SSN 123-45-6789."
    assert counts == {"card": 1}


@pytest.mark.parametrize("name", ["sec_10q_aapl", "reuters_finance", "bbc_business"])
def test_real_finance_documents_have_no_pii_and_redact_leaves_them_identical(name):
    # verified by reading: these filings and news stories contain amounts, dates, CUSIPs, phone-less
    # addresses, but no email, IP, phone, card, IBAN or SSN
    docs = read_jsonl_gz(DATA / "finance" / f"{name}.jsonl.gz")
    assert docs
    for doc in docs:
        assert find_pii(doc["text"]) == [], doc["id"]
        out, counts = redact(doc["text"])
        assert out == doc["text"] and counts == {}


def test_injected_pii_in_a_real_filing_is_redacted_and_the_rest_untouched():
    doc = read_jsonl_gz(DATA / "finance" / "sec_10q_aapl.jsonl.gz")[0]["text"]
    text = doc + "\n\nInvestor contact: ir@apple.example, (408) 996-1010."
    out, counts = redact(text)
    assert out == doc + "\n\nInvestor contact: <EMAIL>, <PHONE>."
    assert counts == {"email": 1, "phone": 1}


def test_a_card_like_tail_of_an_iban_shaped_string_is_not_a_card():
    # checksums that fail: not IBANs; their digit tails pass Luhn with a card prefix by chance
    for text in ("Reference code CH13 6508 6296 5798 1910 7 was rejected.",
                 "Wire to ES87 5503 2850 9087 5632 9505 bounced.",
                 "Account IT72 G000 4417 3700 3674 2416 470 is closed."):
        assert [s.kind for s in find_pii(text)] == [], text
    assert [s.kind for s in find_pii("Pay with 4111 1111 1111 1111 today.")] == ["card"]


def test_dotted_quads_glued_to_names_are_versions_not_addresses():
    for text in ("Download novas-3.1.1.3.tar.gz from the mirror.", "Running Linux 2.6.18.3-exp on the box.",
                 "See zlib_1.2.3.4 for details."):
        assert find_pii(text) == [], text
    assert [s.kind for s in find_pii("The server at 10.20.30.40. It answered.")] == ["ip"]
    assert [s.kind for s in find_pii("Ping 8.8.8.8 - it is up.")] == ["ip"]


def test_long_digit_runs_cost_linear_time():
    # groups of a phone are split by a mandatory separator: with an optional one a 60-digit run can be cut
    # into groups in millions of ways, and the regex backtracks through all of them (~0.25 s per run)
    text = " ".join(f"Tel: {'1234567890' * 6}a 00{'1' * 60}b" for _ in range(20))
    t0 = time.perf_counter()
    assert find_pii(text) == []
    assert time.perf_counter() - t0 < 0.5


def test_zip4_codes_iban_tails_and_dash_glued_ids_are_not_phones_or_cards():
    assert find_pii("Principal offices: 59 Temple Place, Boston, MA 02111-1307, USA.") == []
    assert find_pii("Reference code NL70 ABNA 0029 0765 64 was rejected.") == []
    assert find_pii("DM_UUID=mpath-3530111333300000 MINOR=3") == []
    assert found("Ross McFluff: 834.345.1254 155 Elm Street") == [("phone", "834.345.1254")]
    assert found("Tel: 712/874-8632 (1) Refer to Note 1.") == [("phone", "712/874-8632")]


def test_switchboard_numbers_in_filings_are_redacted_like_any_phone():
    # decision (docs/filtering.md): every phone is redacted, a company's cover-page number included
    text = ("(Address of principal executive offices) (Zip Code) (408) 996-1010 (Registrant's telephone number, "
            "including area code)")
    out, counts = redact(text)
    assert out == ("(Address of principal executive offices) (Zip Code) <PHONE> (Registrant's telephone number, "
                   "including area code)")
    assert counts == {"phone": 1}
