//! History file formats: detection, readers, and what each format implies.
//!
//! - [`Format::Native`]: JSON Lines, one [`Op`] per line (see README.md).
//! - [`Format::Edn`]: a Jepsen history, a vector of op maps or a stream of
//!   them (`history.edn`).
//! - [`Format::Etcd`]: Porcupine's `test_data/jepsen/etcd_*.log`: Jepsen log
//!   lines `INFO  jepsen.util - <process> :<type> :<f> <value>`.
//! - [`Format::PorcupineKv`]: Porcupine's `test_data/kv/*.txt`: one EDN map
//!   per line with `:key` and string values; a missing key reads as `""`.
//!
//! Each format has its own meaning ([`Format::semantics`]): EDN histories
//! are read as Jepsen and Knossos read them, the others with the native
//! meaning (which is also Porcupine's).

use serde_json::Value;

use crate::edn;
use crate::history::{History, Op, OpType, Process, Semantics};
use crate::model::ModelKind;

/// A malformed input: where, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number (0 when not tied to a line).
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(f, "{}", self.message)
        }
    }
}

impl std::error::Error for ParseError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Native,
    Edn,
    Etcd,
    PorcupineKv,
}

impl Format {
    pub fn by_name(s: &str) -> Option<Format> {
        Some(match s {
            "native" | "jsonl" | "json" => Format::Native,
            "edn" | "jepsen" => Format::Edn,
            "etcd" => Format::Etcd,
            "porcupine-kv" | "kv" => Format::PorcupineKv,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Edn => "edn",
            Format::Etcd => "etcd",
            Format::PorcupineKv => "porcupine-kv",
        }
    }

    /// What the events of a history in this format mean: Jepsen's (and
    /// Knossos's) meaning for EDN, the native one (also Porcupine's) for
    /// the others. See [`Semantics`].
    pub fn semantics(self) -> Semantics {
        match self {
            Format::Edn => Semantics::Jepsen,
            Format::Native | Format::Etcd | Format::PorcupineKv => Semantics::Native,
        }
    }

    /// The model to use when none is given: etcd logs are a single
    /// cas-register, Porcupine kv logs a key-value map. Native and EDN
    /// histories: multi-register if a client op is a `txn`, mutex if one
    /// is an acquire or release, a key-value map if one carries a key,
    /// else a cas-register.
    pub fn default_model(self, history: &History) -> ModelKind {
        match self {
            Format::Etcd => ModelKind::CasRegister,
            Format::PorcupineKv => ModelKind::Kv,
            Format::Native | Format::Edn => {
                let client = || history.ops.iter().filter(|o| o.is_client());
                if client().any(|o| o.f == "txn") {
                    ModelKind::MultiRegister
                } else if client()
                    .any(|o| matches!(crate::model::canonical_f(&o.f), "acquire" | "release"))
                {
                    ModelKind::Mutex
                } else if client().any(|o| o.key.is_some()) {
                    ModelKind::Kv
                } else {
                    ModelKind::CasRegister
                }
            }
        }
    }

    /// The initial value of every register/key when none is given:
    /// `""` for Porcupine kv (its model starts from the empty string),
    /// `null` (absent) otherwise.
    pub fn default_initial(self) -> Value {
        match self {
            Format::PorcupineKv => Value::String(String::new()),
            _ => Value::Null,
        }
    }
}

fn first_content_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(';'))
}

/// Guesses the format from the first non-blank, non-comment line.
pub fn detect(text: &str) -> Format {
    let Some(line) = first_content_line(text) else {
        return Format::Native;
    };
    if line.starts_with("INFO") || line.contains("jepsen.util") {
        return Format::Etcd;
    }
    let rest = line.trim_start_matches('{').trim_start();
    if line.starts_with('{') && rest.starts_with('"') {
        return Format::Native;
    }
    if line.starts_with('{')
        && line.contains(":key")
        && !line.contains(":time")
        && !line.contains(":index")
    {
        return Format::PorcupineKv;
    }
    Format::Edn
}

/// Detects the format and parses.
pub fn parse_auto(text: &str) -> Result<(History, Format), ParseError> {
    let format = detect(text);
    Ok((parse(text, format)?, format))
}

/// Parses text in the given format. The history gets the format's
/// meaning ([`Format::semantics`]).
pub fn parse(text: &str, format: Format) -> Result<History, ParseError> {
    let h = match format {
        Format::Native => History::from_jsonl(text),
        Format::Edn | Format::PorcupineKv => edn::history_from_edn(text),
        Format::Etcd => parse_etcd(text),
    }?;
    Ok(h.with_semantics(format.semantics()))
}

const ETCD_SHAPE: &str =
    "expected a Jepsen log line `INFO  jepsen.util - <process> :<type> :<f> <value>`";

/// Reads Porcupine's etcd format. `:fail :read :timed-out` (and any
/// `:timed-out` failure) means the outcome is unknown, so it becomes `info`.
pub fn parse_etcd(text: &str) -> Result<History, ParseError> {
    let mut ops = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let err = |m: String| ParseError {
            line: lineno,
            message: m,
        };
        let Some(idx) = t.find("jepsen.util") else {
            return Err(err(ETCD_SHAPE.into()));
        };
        let rest = t[idx + "jepsen.util".len()..].trim_start();
        let Some(rest) = rest.strip_prefix('-') else {
            return Err(err(format!(
                "{ETCD_SHAPE}: missing ` - ` after jepsen.util"
            )));
        };
        let mut r = edn::Reader::new(rest);
        let mut next = |what: &str| -> Result<edn::Edn, ParseError> {
            match r.next_value() {
                Ok(Some((v, _))) => Ok(v),
                Ok(None) => Err(err(format!("{ETCD_SHAPE}: missing {what}"))),
                Err(e) => Err(err(format!("{ETCD_SHAPE}: in {what}: {}", e.message))),
            }
        };
        let process = match next("process")? {
            edn::Edn::Int(n) if n >= 0 => Process::Client(n as u64),
            edn::Edn::Keyword(s) | edn::Edn::Symbol(s) => Process::Named(s),
            _ => {
                return Err(err(format!(
                    "{ETCD_SHAPE}: process must be a number or :nemesis"
                )))
            }
        };
        let kind = match next("type")? {
            edn::Edn::Keyword(s) => OpType::by_name(&s),
            _ => None,
        };
        let Some(mut kind) = kind else {
            return Err(err(format!(
                "{ETCD_SHAPE}: type must be :invoke, :ok, :fail or :info"
            )));
        };
        let f = match next("f")? {
            edn::Edn::Keyword(s) | edn::Edn::Symbol(s) => s,
            _ => return Err(err(format!("{ETCD_SHAPE}: f must be a keyword like :read"))),
        };
        let value = match r.next_value() {
            Ok(Some((v, _))) => v,
            Ok(None) => edn::Edn::Nil,
            Err(e) => return Err(err(format!("{ETCD_SHAPE}: in value: {}", e.message))),
        };
        if kind == OpType::Fail && value == edn::Edn::Keyword("timed-out".into()) {
            kind = OpType::Info;
        }
        let mut extra = serde_json::Map::new();
        let mut value = value.to_json();
        if kind == OpType::Info && value == Value::String("timed-out".into()) {
            extra.insert("error".into(), value);
            value = Value::Null;
        }
        let index = ops.len();
        ops.push(Op {
            index,
            process,
            kind,
            f,
            key: None,
            value,
            time: None,
            extra,
        });
    }
    Ok(History::new(ops))
}
