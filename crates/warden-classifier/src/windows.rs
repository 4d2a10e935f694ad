//! Sentence windows: how a long text is cut before the model scores it.
//!
//! A model that scores a whole document dilutes one injected sentence in forty benign ones. So a
//! text longer than [`WINDOW_BYTES`] is cut into windows of whole sentences, each at most
//! [`WINDOW_BYTES`] long, consecutive windows sharing one sentence (so an instruction spread over
//! two sentences is seen whole in one window); the model scores each window and the text's score
//! per label is the maximum. The trainer (`tools/classifier/train.py`, `windows()`) cuts its long
//! training and evaluation texts the same way; keep the two in step.

use std::ops::Range;

/// The longest window, in UTF-8 bytes of the original text. A text at most this long is one
/// window.
pub const WINDOW_BYTES: usize = 512;

/// Whether `c` ends a sentence.
pub(crate) fn ends_sentence(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '\n' | '。' | '！' | '？')
}

/// The sentences of `text` as byte ranges covering it: each ends after a sentence-ending
/// character; a sentence of whitespace only joins the one before; a sentence longer than
/// [`WINDOW_BYTES`] is cut into pieces of at most that many bytes (at character boundaries).
fn sentences(text: &str) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    let push = |r: Range<usize>, out: &mut Vec<Range<usize>>| {
        if text[r.clone()].trim().is_empty() {
            if let Some(last) = out.last_mut() {
                last.end = r.end;
                return;
            }
        }
        out.push(r);
    };
    for (i, c) in text.char_indices() {
        if ends_sentence(c) {
            let end = i + c.len_utf8();
            push(start..end, &mut out);
            start = end;
        }
    }
    if start < text.len() {
        push(start..text.len(), &mut out);
    }
    // Cut what is still too long (a whitespace-only tail may have made a sentence longer).
    let mut cut = Vec::with_capacity(out.len());
    for r in out {
        let mut s = r.start;
        while r.end - s > WINDOW_BYTES {
            let mut e = s + WINDOW_BYTES;
            while !text.is_char_boundary(e) {
                e -= 1;
            }
            cut.push(s..e);
            s = e;
        }
        cut.push(s..r.end);
    }
    cut
}

/// The windows of `text` as byte ranges: `[0..len]` for a text of at most [`WINDOW_BYTES`],
/// otherwise runs of whole sentences of at most [`WINDOW_BYTES`], each sharing its first sentence
/// with the end of the one before.
pub fn windows(text: &str) -> Vec<Range<usize>> {
    if text.len() <= WINDOW_BYTES {
        return std::iter::once(0..text.len()).collect();
    }
    let s = sentences(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let mut j = i + 1;
        let mut size = s[i].len();
        while j < s.len() && size + s[j].len() <= WINDOW_BYTES {
            size += s[j].len();
            j += 1;
        }
        out.push(s[i].start..s[j - 1].end);
        if j >= s.len() {
            break;
        }
        i = if j - 1 > i { j - 1 } else { j };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_text_is_one_window() {
        assert_eq!(windows(""), vec![0..0]);
        assert_eq!(windows("Hello. World."), vec![0..13]);
    }

    #[test]
    fn long_text_windows_share_a_sentence_and_stay_within_the_bound() {
        let sentence = "This sentence is forty bytes long, yes. ";
        let text = sentence.repeat(40);
        let w = windows(&text);
        assert!(w.len() > 3);
        assert_eq!(w[0].start, 0);
        assert_eq!(w.last().unwrap().end, text.len());
        for pair in w.windows(2) {
            assert!(pair[1].start < pair[0].end, "consecutive windows overlap: {pair:?}");
        }
        assert!(w.iter().all(|r| r.len() <= WINDOW_BYTES));
    }

    #[test]
    fn an_endless_sentence_is_cut_at_character_boundaries() {
        let text = "é".repeat(1000);
        let w = windows(&text);
        assert!(w
            .iter()
            .all(|r| r.len() <= WINDOW_BYTES && text.is_char_boundary(r.start) && text.is_char_boundary(r.end)));
        assert_eq!(w.last().unwrap().end, text.len());
    }

    #[test]
    fn every_sentence_is_in_some_window() {
        let text: String = (0..200).map(|i| format!("Sentence number {i} of many!\n")).collect();
        let w = windows(&text);
        for (i, _) in text.match_indices("Sentence") {
            assert!(w.iter().any(|r| r.contains(&i)));
        }
    }
}
