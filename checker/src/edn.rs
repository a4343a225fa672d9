//! A small EDN reader and writer, just enough for Jepsen histories.
//!
//! Reads maps, vectors, lists, sets, keywords, symbols, strings, integers,
//! floats, characters, `nil`, `true`/`false`, `;` comments, `#_` discards and
//! tagged literals (`#inst "..."`, the tag is dropped). Errors carry the line
//! number. Nesting is limited so that hostile input cannot overflow the stack.

use serde_json::{Map, Number, Value};

use crate::formats::ParseError;
use crate::history::{History, Op, OpType, Process, Semantics};

/// An EDN value.
#[derive(Clone, Debug, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX` that fits in 64 bits.
    UInt(u64),
    Float(f64),
    Str(String),
    Keyword(String),
    Symbol(String),
    Vector(Vec<Edn>),
    List(Vec<Edn>),
    Set(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
}

const MAX_DEPTH: usize = 200;

/// Streaming reader over EDN text.
pub struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
}

fn is_delim(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';'
        )
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Reader<'a> {
        Reader {
            src: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    /// The current line (1-based).
    pub fn line(&self) -> usize {
        self.line
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            line: self.line,
            message: msg.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            if b.is_ascii_whitespace() || b == b',' {
                self.bump();
            } else if b == b';' {
                while let Some(b) = self.peek() {
                    if b == b'\n' {
                        break;
                    }
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    /// Reads the next top-level value, or `None` at the end of the input.
    /// Returns the value and the line it starts on.
    pub fn next_value(&mut self) -> Result<Option<(Edn, usize)>, ParseError> {
        self.skip_ws();
        if self.peek().is_none() {
            return Ok(None);
        }
        let line = self.line;
        let v = self.read(0)?;
        Ok(Some((v, line)))
    }

    fn read(&mut self, depth: usize) -> Result<Edn, ParseError> {
        if depth > MAX_DEPTH {
            return self.err(format!("EDN nested more than {MAX_DEPTH} levels deep"));
        }
        self.skip_ws();
        let Some(b) = self.peek() else {
            return self.err("unexpected end of input: expected an EDN value");
        };
        match b {
            b'{' => {
                self.bump();
                let items = self.read_seq(b'}', depth)?;
                if items.len() % 2 != 0 {
                    return self.err("a map needs an even number of forms (key value pairs)");
                }
                let mut it = items.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Ok(Edn::Map(pairs))
            }
            b'[' => {
                self.bump();
                Ok(Edn::Vector(self.read_seq(b']', depth)?))
            }
            b'(' => {
                self.bump();
                Ok(Edn::List(self.read_seq(b')', depth)?))
            }
            b')' | b']' | b'}' => self.err(format!("unexpected `{}`", b as char)),
            b'"' => {
                self.bump();
                self.read_string()
            }
            b'#' => {
                self.bump();
                match self.peek() {
                    Some(b'{') => {
                        self.bump();
                        Ok(Edn::Set(self.read_seq(b'}', depth)?))
                    }
                    Some(b'_') => {
                        self.bump();
                        self.read(depth + 1)?;
                        self.read(depth + 1)
                    }
                    Some(c) if c.is_ascii_alphabetic() => {
                        // Tagged literal: drop the tag, keep the value.
                        let _tag = self.read_token();
                        self.read(depth + 1)
                    }
                    _ => self.err("expected `#{`, `#_` or a tag after `#`"),
                }
            }
            b'\\' => {
                self.bump();
                let tok = self.read_token();
                let s = match tok.as_str() {
                    "newline" => "\n".to_string(),
                    "space" => " ".to_string(),
                    "tab" => "\t".to_string(),
                    "return" => "\r".to_string(),
                    "" => match self.bump() {
                        Some(c) => (c as char).to_string(),
                        None => return self.err("expected a character after `\\`"),
                    },
                    t => t.to_string(),
                };
                Ok(Edn::Str(s))
            }
            b':' => {
                self.bump();
                let tok = self.read_token();
                if tok.is_empty() {
                    return self.err("expected a keyword name after `:`");
                }
                Ok(Edn::Keyword(tok))
            }
            _ => {
                let tok = self.read_token();
                if tok.is_empty() {
                    // A byte that is neither a delimiter nor a token byte
                    // cannot occur (read_token takes all non-delimiters).
                    self.bump();
                    return self.err(format!("unexpected character `{}`", b as char));
                }
                Ok(self.atom(tok)?)
            }
        }
    }

    fn read_seq(&mut self, close: u8, depth: usize) -> Result<Vec<Edn>, ParseError> {
        let start = self.line;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => {
                    return Err(ParseError {
                        line: start,
                        message: format!(
                            "unterminated collection opened here: expected `{}`",
                            close as char
                        ),
                    })
                }
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(b'#') if self.src.get(self.pos + 1) == Some(&b'_') => {
                    self.bump();
                    self.bump();
                    self.read(depth + 1)?;
                }
                Some(_) => items.push(self.read(depth + 1)?),
            }
        }
    }

    fn read_token(&mut self) -> String {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if is_delim(b) {
                break;
            }
            self.bump();
        }
        String::from_utf8_lossy(&self.src[start..self.pos]).into_owned()
    }

    fn read_string(&mut self) -> Result<Edn, ParseError> {
        let start_line = self.line;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.bump() else {
                return Err(ParseError {
                    line: start_line,
                    message: "unterminated string: expected a closing `\"`".into(),
                });
            };
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.bump() else {
                        return self.err("unterminated escape in string");
                    };
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'u' => {
                            let mut code = 0u32;
                            for _ in 0..4 {
                                let d = self.bump().and_then(|c| (c as char).to_digit(16));
                                match d {
                                    Some(d) => code = code * 16 + d,
                                    None => return self.err("expected 4 hex digits after `\\u`"),
                                }
                            }
                            let c = char::from_u32(code).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        other => {
                            return self
                                .err(format!("unknown escape `\\{}` in string", other as char))
                        }
                    }
                }
                b => out.push(b),
            }
        }
        Ok(Edn::Str(String::from_utf8_lossy(&out).into_owned()))
    }

    fn atom(&self, tok: String) -> Result<Edn, ParseError> {
        match tok.as_str() {
            "nil" => return Ok(Edn::Nil),
            "true" => return Ok(Edn::Bool(true)),
            "false" => return Ok(Edn::Bool(false)),
            _ => {}
        }
        let bytes = tok.as_bytes();
        let numeric = bytes[0].is_ascii_digit()
            || (bytes.len() > 1
                && (bytes[0] == b'-' || bytes[0] == b'+')
                && bytes[1].is_ascii_digit());
        if !numeric {
            return Ok(Edn::Symbol(tok));
        }
        let t = tok.trim_end_matches(['N', 'M']);
        if let Ok(i) = t.parse::<i64>() {
            return Ok(Edn::Int(i));
        }
        if let Ok(u) = t.parse::<u64>() {
            return Ok(Edn::UInt(u));
        }
        if is_integer_literal(t) {
            // As a float it would compare equal to its neighbours.
            return self.err(format!(
                "integer `{tok}` does not fit in 64 bits: the checker compares values \
                 exactly and cannot hold it (write it as a string)"
            ));
        }
        if let Ok(f) = t.parse::<f64>() {
            return Ok(Edn::Float(f));
        }
        self.err(format!("malformed number `{tok}`"))
    }
}

/// Whether `t` is an integer literal: an optional sign and digits only.
pub(crate) fn is_integer_literal(t: &str) -> bool {
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a whole text into its top-level values.
pub fn parse_all(text: &str) -> Result<Vec<(Edn, usize)>, ParseError> {
    let mut r = Reader::new(text);
    let mut out = Vec::new();
    while let Some(v) = r.next_value()? {
        out.push(v);
    }
    Ok(out)
}

impl Edn {
    /// Converts to JSON: keywords and symbols become strings (without the
    /// colon), collections become arrays, map keys become strings.
    pub fn to_json(&self) -> Value {
        match self {
            Edn::Nil => Value::Null,
            Edn::Bool(b) => Value::Bool(*b),
            Edn::Int(i) => Value::Number((*i).into()),
            Edn::UInt(u) => Value::Number((*u).into()),
            Edn::Float(f) => Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => Value::String(s.clone()),
            Edn::Vector(v) | Edn::List(v) | Edn::Set(v) => {
                Value::Array(v.iter().map(Edn::to_json).collect())
            }
            Edn::Map(pairs) => {
                let mut m = Map::new();
                for (k, v) in pairs {
                    let key = match k {
                        Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => s.clone(),
                        other => json_to_edn(&other.to_json()),
                    };
                    m.insert(key, v.to_json());
                }
                Value::Object(m)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Edn::Nil => "nil".into(),
            Edn::Bool(_) => "a boolean".into(),
            Edn::Int(_) | Edn::UInt(_) | Edn::Float(_) => "a number".into(),
            Edn::Str(_) => "a string".into(),
            Edn::Keyword(k) => format!(":{k}"),
            Edn::Symbol(s) => format!("symbol {s}"),
            Edn::Vector(_) => "a vector".into(),
            Edn::List(_) => "a list".into(),
            Edn::Set(_) => "a set".into(),
            Edn::Map(_) => "a map".into(),
        }
    }
}

/// Converts one Jepsen op map into an [`Op`]. `pos` is the default index.
pub fn op_from_edn(map: &Edn, line: usize, pos: usize) -> Result<Op, ParseError> {
    let err = |m: String| ParseError { line, message: m };
    let Edn::Map(pairs) = map else {
        return Err(err(format!(
            "expected an operation map like {{:process 0, :type :invoke, :f :read, :value nil}}, found {}",
            map.describe()
        )));
    };
    let mut process = None;
    let mut kind = None;
    let mut f = None;
    let mut key = None;
    let mut value = Value::Null;
    let mut time = None;
    let mut index = None;
    let mut extra = Map::new();
    for (k, v) in pairs {
        let name = match k {
            Edn::Keyword(s) | Edn::Str(s) | Edn::Symbol(s) => s.as_str(),
            _ => {
                extra.insert(json_to_edn(&k.to_json()), v.to_json());
                continue;
            }
        };
        match name {
            "process" => {
                process = Some(match v {
                    Edn::Int(i) if *i >= 0 => Process::Client(*i as u64),
                    Edn::Keyword(s) | Edn::Str(s) | Edn::Symbol(s) => Process::Named(s.clone()),
                    other => {
                        return Err(err(format!(
                    ":process must be a non-negative integer or a keyword like :nemesis, found {}",
                    other.describe()
                )))
                    }
                })
            }
            "type" => {
                let s = match v {
                    Edn::Keyword(s) | Edn::Str(s) | Edn::Symbol(s) => s.as_str(),
                    _ => "",
                };
                kind = Some(OpType::by_name(s).ok_or_else(|| {
                    err(format!(
                        ":type must be one of :invoke :ok :fail :info, found {}",
                        v.describe()
                    ))
                })?)
            }
            "f" => {
                f = Some(match v {
                    Edn::Keyword(s) | Edn::Str(s) | Edn::Symbol(s) => s.clone(),
                    other => json_to_edn(&other.to_json()),
                })
            }
            "key" => {
                key = crate::history::key_from_value(&v.to_json()).map_err(err)?;
            }
            "value" => value = v.to_json(),
            "time" => match v {
                Edn::Int(i) if *i >= 0 => time = Some(*i as u64),
                _ => {
                    return Err(err(format!(
                        ":time must be a non-negative integer (nanoseconds), found {}",
                        v.describe()
                    )))
                }
            },
            "index" => match v {
                Edn::Int(i) if *i >= 0 => index = Some(*i as usize),
                _ => {
                    return Err(err(format!(
                        ":index must be a non-negative integer, found {}",
                        v.describe()
                    )))
                }
            },
            other => {
                extra.insert(other.to_string(), v.to_json());
            }
        }
    }
    let process = process.ok_or_else(|| err("operation map has no :process".into()))?;
    let kind =
        kind.ok_or_else(|| err("operation map has no :type (:invoke :ok :fail :info)".into()))?;
    let f = f.ok_or_else(|| err("operation map has no :f (e.g. :read, :write, :cas)".into()))?;
    Ok(Op {
        index: index.unwrap_or(pos),
        process,
        kind,
        f,
        key,
        value,
        time,
        extra,
    })
}

/// Reads a Jepsen history: a vector/list of op maps, or a stream of maps.
/// The history has Jepsen's meaning ([`Semantics::Jepsen`]).
pub fn history_from_edn(text: &str) -> Result<History, ParseError> {
    let values = parse_all(text)?;
    let mut ops = Vec::new();
    let single_coll = values.len() == 1 && matches!(values[0].0, Edn::Vector(_) | Edn::List(_));
    if single_coll {
        let (Edn::Vector(items) | Edn::List(items)) = &values[0].0 else {
            unreachable!()
        };
        let line = values[0].1;
        for item in items {
            let pos = ops.len();
            ops.push(op_from_edn(item, line, pos)?);
        }
    } else {
        for (v, line) in &values {
            let pos = ops.len();
            ops.push(op_from_edn(v, *line, pos)?);
        }
    }
    Ok(History::new(ops).with_semantics(Semantics::Jepsen))
}

fn edn_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_keyword_safe(s: &str) -> bool {
    !s.is_empty()
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_?!*+.<>=/".contains(&b))
}

/// Writes a JSON value as EDN (null -> nil, arrays -> vectors).
pub fn json_to_edn(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => edn_string(s),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(json_to_edn).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| {
                    let key = if is_keyword_safe(k) {
                        format!(":{k}")
                    } else {
                        edn_string(k)
                    };
                    format!("{key} {}", json_to_edn(v))
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

fn name_to_edn(s: &str) -> String {
    if is_keyword_safe(s) {
        format!(":{s}")
    } else {
        edn_string(s)
    }
}

/// Writes a history as Jepsen EDN, one op map per line.
pub fn history_to_edn(h: &History) -> String {
    let mut out = String::new();
    for op in &h.ops {
        out.push_str(&format!("{{:index {}, :process ", op.index));
        match &op.process {
            Process::Client(n) => out.push_str(&n.to_string()),
            Process::Named(s) => out.push_str(&name_to_edn(s)),
        }
        out.push_str(&format!(
            ", :type :{}, :f {}",
            op.kind.name(),
            name_to_edn(&op.f)
        ));
        if let Some(k) = &op.key {
            out.push_str(&format!(", :key {}", edn_string(k)));
        }
        out.push_str(&format!(", :value {}", json_to_edn(&op.value)));
        if let Some(t) = op.time {
            out.push_str(&format!(", :time {t}"));
        }
        for (k, v) in &op.extra {
            out.push_str(&format!(", {} {}", name_to_edn(k), json_to_edn(v)));
        }
        out.push_str("}\n");
    }
    out
}
