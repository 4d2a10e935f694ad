//! Where things are in a YAML file: a map from JSON pointer (`/rules/0/action`) to line and
//! column, so that an error found on the parsed value can name the place to fix.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// Positions of the values (and of the keys) of a YAML document, by JSON pointer.
#[derive(Debug, Default)]
pub struct Positions {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

enum Frame {
    /// `placed`: the mapping's own position was set from its first key (the parser's mark for a
    /// block mapping's start lies a few columns late).
    Map {
        pointer: String,
        key: Option<String>,
        placed: bool,
    },
    Seq {
        pointer: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    out: Positions,
    stack: Vec<Frame>,
}

fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

impl Builder {
    /// The pointer of the node starting now, or `None` if it is a mapping key.
    fn place(&mut self, pos: Pos, scalar: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { pointer, next }) => {
                let p = format!("{pointer}/{next}");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { pointer, key, placed }) => match key.take() {
                Some(k) => Some(format!("{pointer}/{}", escape(&k))),
                None => {
                    // A key: remember it and where it is.
                    if !*placed {
                        self.out.values.insert(pointer.clone(), pos);
                        *placed = true;
                    }
                    let k = scalar.unwrap_or_default().to_string();
                    self.out.keys.insert(format!("{pointer}/{}", escape(&k)), pos);
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos { line: mark.line(), col: mark.col() + 1 };
        match ev {
            Event::Scalar(ref s, ..) => {
                if let Some(p) = self.place(pos, Some(s)) {
                    self.out.values.insert(p, pos);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.place(pos, None) {
                    self.out.values.insert(p, pos);
                }
            }
            Event::SequenceStart(..) => {
                let p = self.place(pos, None).unwrap_or_default();
                self.out.values.insert(p.clone(), pos);
                self.stack.push(Frame::Seq { pointer: p, next: 0 });
            }
            Event::MappingStart(..) => {
                let p = self.place(pos, None).unwrap_or_default();
                self.out.values.insert(p.clone(), pos);
                self.stack.push(Frame::Map { pointer: p, key: None, placed: false });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl Positions {
    /// Reads the positions of a YAML text. A text that does not parse gives an empty map (the
    /// YAML parser's own error is reported instead).
    pub fn of(text: &str) -> Positions {
        let mut b = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut b, false).is_err() {
            return Positions::default();
        }
        b.out
    }

    /// Where the value at `pointer` is, or its nearest enclosing value.
    pub fn value(&self, pointer: &str) -> Option<Pos> {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.values.get(p) {
                return Some(*pos);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }

    /// Where the key of the member at `pointer` is.
    pub fn key(&self, pointer: &str) -> Option<Pos> {
        self.keys.get(pointer).copied()
    }
}

/// `/rules/0/phrases/list` as `rules[0].phrases.list`, the way a reader names a field.
pub fn field_name(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    if out.is_empty() {
        "(top level)".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_map_to_lines() {
        let text = "name: x\nrules:\n  - id: a\n    action: block\n  - id: b\n    phrases: { list: [p, q] }\n";
        let p = Positions::of(text);
        assert_eq!(p.value("/rules/0/action"), Some(Pos { line: 4, col: 13 }));
        assert_eq!(p.key("/rules/1/phrases"), Some(Pos { line: 6, col: 5 }));
        assert_eq!(p.value("/rules/1/phrases/list/1"), Some(Pos { line: 6, col: 26 }));
        // A missing member is placed at its nearest enclosing value: the second rule.
        assert_eq!(p.value("/rules/1/missing/deeper"), Some(Pos { line: 5, col: 5 }));
        assert_eq!(field_name("/rules/1/phrases/list"), "rules[1].phrases.list");
    }
}
