"""filters.normalize and filters.html on strings."""

import unicodedata

from filters.html import extract_text, looks_like_html
from filters.normalize import clean_text, fix_unicode, normalize_whitespace, remove_control_chars


def test_mojibake_is_repaired():
    assert fix_unicode("CafÃ©") == "Café"
    assert fix_unicode("The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.") == "The Mona Lisa doesn’t have eyebrows."


def test_curly_quotes_and_fullwidth_forms_are_kept():
    assert fix_unicode("“Quoted” ‘text’") == "“Quoted” ‘text’"
    assert fix_unicode("ＡＢＣ１２３ 東京") == "ＡＢＣ１２３ 東京"


def test_text_is_nfc():
    decomposed = "Cafe\u0301 au lait"
    assert clean_text(decomposed) == "Café au lait"
    assert unicodedata.is_normalized("NFC", clean_text(decomposed))


def test_control_chars_and_nul_removed_tabs_and_newlines_kept():
    assert remove_control_chars("a\x00b\x07c\x1bd\ufeffe\tf\ng") == "abcde\tf\ng"
    assert "\x00" not in clean_text("Revenue\x00 rose 5%.")


def test_whitespace_normalized_and_paragraph_breaks_survive():
    text = "Title  line   \r\n\r\n\r\n\r\nFirst\u00a0paragraph\t  here.  \n\n\n\nSecond paragraph.\u2028Next line."
    assert normalize_whitespace(text) == "Title line\n\nFirst paragraph here.\n\nSecond paragraph.\nNext line."


def test_leading_indentation_of_code_is_kept():
    rst = "Example::\n\n    for x in range(3):\n        print(x)\n"
    assert clean_text(rst) == "Example::\n\n    for x in range(3):\n        print(x)"


def test_real_article_is_unchanged_apart_from_whitespace(finance_docs):
    for doc in finance_docs[:20]:
        cleaned = clean_text(doc["text"])
        assert cleaned.split() == doc["text"].split()


def test_html_detection():
    assert looks_like_html("<!DOCTYPE html><html><head><title>x</title></head><body><p>a</p></body></html>")
    assert looks_like_html("  <html lang='en'><body>hi</body></html>")
    assert not looks_like_html("Use the <p> tag for paragraphs and <div> for blocks in HTML.")


def test_html_extraction_keeps_article_drops_boilerplate():
    paragraphs = "".join(f"<p>{s}</p>" for s in [
        "Shares of the company rose sharply on Tuesday after it reported record quarterly profits.",
        "Analysts had expected a smaller gain, citing weaker demand in its largest markets.",
        "The board also announced a dividend increase and a new share buyback programme.",
    ])
    page = (f"<html><head><title>Markets</title><script>var x = 1;</script></head><body>"
            f"<nav><a href='/'>Home</a> | <a href='/m'>Markets</a></nav><article><h1>Profits soar</h1>"
            f"{paragraphs}</article><footer>Copyright 2024 Example News. All rights reserved.</footer>"
            f"</body></html>")
    for extractor in ("trafilatura", "resiliparse"):
        text = extract_text(page, extractor)
        assert "record quarterly profits" in text and "share buyback" in text
        assert "var x" not in text


def test_ascii_fast_path_agrees_with_ftfy(general_docs):
    import ftfy

    from filters.normalize import FTFY_CONFIG

    ascii_docs = [d["text"] for d in general_docs if d["text"].isascii()][:50]
    assert ascii_docs
    for text in ascii_docs + ["Profits &amp; losses", "red \x1b[31mtext\x1b[0m"]:
        assert fix_unicode(text) == ftfy.fix_text(text, config=FTFY_CONFIG)
